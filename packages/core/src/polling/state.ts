import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Leases } from "../leases";
import { conditionalWrite, type Store } from "../table";
import type { GitHubPollState } from "./github";
import type { GitLabPollState } from "./gitlab";
import { type GovernorSnapshot, type RateGovernorOptions, RateGovernors } from "./governor";

/**
 * Reconciliation's state between runs, one item per forge (`RECONCILE#<forge>` / `STATE`): the
 * poll's cursors (where the last poll ended, which deliveries it examined) and every token's rate
 * governor (its calls in the window, what the forge last said is left). Polls run in short-lived
 * functions; without the governors' windows stored, each would start with a fresh share and the
 * budget would hold for one invocation only.
 *
 * Whoever spends a forge's budget (the poll, and later the sweep) holds the forge's reconciliation
 * lease (`reconciliationLease`) while it loads, spends and saves: two overlapping runs would each load
 * the same window and spend it twice. A run that finds the lease held skips that forge. The item also
 * carries a version, and a save is conditional on it, so that a run that outlived its lease cannot
 * overwrite what the next holder wrote.
 */

export type ReconciledForge = "github" | "gitlab";

export interface PollStates {
  github: GitHubPollState;
  gitlab: GitLabPollState;
}

export interface ReconciliationState<F extends ReconciledForge> {
  forge: F;
  poll: PollStates[F];
  governors: Record<string, Partial<GovernorSnapshot>>;
  /** The item's version as loaded (0 when there is none yet). */
  version: number;
}

/** The lease a run holds while it spends a forge's budget. */
export const reconciliationLease = (forge: ReconciledForge): string => `reconcile#${forge}`;

/**
 * How long the lease is taken for: longer than the poll function may run (60 s), so that it is never
 * lost while a poll runs, and short enough that a crashed poll delays the next one poll at most.
 */
export const RECONCILIATION_LEASE_SECONDS = 90;

const stateKey = (forge: ReconciledForge) => ({ pk: `RECONCILE#${forge}`, sk: "STATE" });

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

export async function loadReconciliationState<F extends ReconciledForge>(
  store: Store,
  forge: F,
): Promise<ReconciliationState<F>> {
  const { Item } = await store.client.send(
    new GetCommand({ TableName: store.tableName, Key: stateKey(forge), ConsistentRead: true }),
  );
  const governors = isRecord(Item?.governors)
    ? (Object.fromEntries(Object.entries(Item.governors).filter(([, value]) => isRecord(value))) as Record<
        string,
        Partial<GovernorSnapshot>
      >)
    : {};
  return {
    forge,
    poll: (isRecord(Item?.poll) ? Item.poll : {}) as PollStates[F],
    governors,
    version: typeof Item?.version === "number" ? Item.version : 0,
  };
}

/**
 * Saves a forge's poll cursors and governors if the item is still at `loaded.version`. False when
 * another run wrote it meanwhile (this run's state is then dropped, and the next run starts from the
 * other's).
 */
export async function saveReconciliationState<F extends ReconciledForge>(
  store: Store,
  loaded: ReconciliationState<F>,
  next: { poll?: PollStates[F]; governors: Record<string, GovernorSnapshot> },
): Promise<boolean> {
  const poll = next.poll ?? loaded.poll;
  return conditionalWrite(() =>
    store.client.send(
      new PutCommand({
        TableName: store.tableName,
        Item: {
          ...stateKey(loaded.forge),
          kind: "reconciliation-state",
          forge: loaded.forge,
          poll,
          governors: next.governors,
          version: loaded.version + 1,
          at: store.now().toISOString(),
        },
        ConditionExpression: loaded.version === 0 ? "attribute_not_exists(pk)" : "version = :version",
        ...(loaded.version === 0 ? {} : { ExpressionAttributeValues: { ":version": loaded.version } }),
      }),
    ),
  );
}

/**
 * A forge's governors as stored, for a caller that holds the forge's reconciliation lease: the
 * governors (restored) and what to save them with. Saving writes only the governors, conditionally
 * on the version loaded.
 */
export async function loadGovernors(
  store: Store,
  forge: ReconciledForge,
  options: RateGovernorOptions,
): Promise<{ governors: RateGovernors; save(): Promise<boolean> }> {
  const loaded = await loadReconciliationState(store, forge);
  const governors = new RateGovernors(options);
  governors.restore(loaded.governors);
  return {
    governors,
    save: () => saveGovernors(store, loaded, governors),
  };
}

export async function saveGovernors(
  store: Store,
  loaded: ReconciliationState<ReconciledForge>,
  governors: Pick<RateGovernors, "snapshot">,
): Promise<boolean> {
  if (loaded.version === 0) {
    return saveReconciliationState(store, loaded, { governors: governors.snapshot() });
  }
  return conditionalWrite(() =>
    store.client.send(
      new UpdateCommand({
        TableName: store.tableName,
        Key: stateKey(loaded.forge),
        UpdateExpression: "SET governors = :governors, version = :next",
        ConditionExpression: "version = :version",
        ExpressionAttributeValues: {
          ":governors": governors.snapshot(),
          ":next": loaded.version + 1,
          ":version": loaded.version,
        },
      }),
    ),
  );
}

/**
 * Runs `work` while holding the forge's reconciliation lease; undefined (and `work` not run) when
 * another run holds it.
 */
export async function withReconciliationLease<T>(
  leases: Leases,
  forge: ReconciledForge,
  holder: string,
  work: () => Promise<T>,
): Promise<T | undefined> {
  const name = reconciliationLease(forge);
  if (!(await leases.acquire(name, holder, RECONCILIATION_LEASE_SECONDS))) return undefined;
  try {
    return await work();
  } finally {
    await leases.release(name, holder);
  }
}
