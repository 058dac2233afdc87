/**
 * Reconciliation's polling: the fallback for missed webhooks. `governor.ts` keeps a token's spend to
 * a share of its budget; `github.ts` and `gitlab.ts` list what each forge has queued and running, as
 * the webhooks' own job events; `ingest.ts` records them through the webhooks' ledger path;
 * `state.ts` keeps the cursors and the governors between runs; `run.ts` is one scheduled poll, and
 * `report.ts` its figure for the status page.
 */
export * from "./github";
export * from "./gitlab";
export * from "./governor";
export * from "./ingest";
export * from "./report";
export * from "./run";
export * from "./state";
