/**
 * Reconciliation's polling: the fallback for missed webhooks. `governor.ts` keeps a token's spend to
 * a share of its budget; `github.ts` and `gitlab.ts` list what each forge has queued and running, as
 * the webhooks' own job events; `ingest.ts` records them through the webhooks' ledger path.
 */
export * from "./github";
export * from "./gitlab";
export * from "./governor";
export * from "./ingest";
