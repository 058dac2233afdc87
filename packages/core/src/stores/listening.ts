/**
 * Warm-first placement: which of a pool's stores listen for jobs.
 *
 * A forge hands a queued job to whichever listening runner asks first; no runner is preferred for
 * its store. Hearth places jobs only through which instances' free slots listen, so it lets listen,
 * at each moment, the stores best for the pool's oldest queued job (the one a listener would take),
 * and keeps the others quiet. With no job queued, no store listens: a job that arrives is heard of
 * at the next heartbeats, and the store warm for it listens first.
 *
 * The same function decides for the heartbeat's answer (`hold`) and for the trace simulator, which
 * adds the heartbeat's lag to it.
 */

/** A store as placement sees it: an instance of the pool in service. */
export interface ListeningStore {
  id: string;
  /**
   * `ready`: in service and reporting, neither draining nor being released; `booting`: launched or
   * resumed and not reporting yet; `other`: neither (stopped, draining, overdue).
   */
  state: "ready" | "booting" | "other";
  /** Epoch milliseconds of the last launch or resume. */
  launchedAt: number;
  freeSlots: number;
  /** Cache keys the store is warm for. */
  cacheKeys: readonly string[];
}

/** A queued job of the pool, oldest first. */
export interface ListeningJob {
  cacheKey: string;
  /** Epoch milliseconds. */
  queuedAt: number;
}

/**
 * How long the oldest queued job waits for a busy store warm for it before cold stores listen too.
 * A warm store saves the job a substitution (about a minute with the binary cache) or a build; past
 * this the wait costs more than it may save.
 */
export const COLD_LISTEN_DELAY_MS = 15_000;

/**
 * How long a booting store warm for the oldest job is waited for: a resume takes about 25 s, and a
 * store that has not reported by then is not counted on.
 */
export const STORE_BOOT_WAIT_MS = 120_000;

/** How many queued jobs after the oldest one placement looks at to keep their warm stores free. */
export const LISTENING_LOOKAHEAD = 64;

/**
 * The ids of the stores that listen now, for a pool whose queued jobs are `queue` (oldest first).
 *
 * - No job queued: none listens.
 * - A ready store warm for the oldest job has a free slot: only stores warm for it listen.
 * - A store warm for it is booting (resumed lately): only stores warm for it listen; the job waits for
 *   it, at most until `STORE_BOOT_WAIT_MS` after its launch.
 * - Stores warm for it are all busy: only they listen, until the job has waited `coldListenDelayMs`.
 * - Otherwise cold stores listen too, except those warm for the next queued jobs while another store
 *   with a free slot can take it; if none can, every store listens.
 */
export function listeningStores(
  queue: readonly ListeningJob[],
  stores: readonly ListeningStore[],
  now: number,
  coldListenDelayMs: number = COLD_LISTEN_DELAY_MS,
): Set<string> {
  const head = queue[0];
  if (head === undefined) return new Set();
  const warmFor = (store: ListeningStore) => store.cacheKeys.includes(head.cacheKey);
  const free = (store: ListeningStore) => store.state === "ready" && store.freeSlots > 0;
  const warm = stores.filter(warmFor);
  if (warm.some(free)) return ids(warm);
  if (warm.some((store) => store.state === "booting" && now - store.launchedAt < STORE_BOOT_WAIT_MS))
    return ids(warm);
  const warmBusy = warm.some((store) => store.state === "ready");
  if (warmBusy && now - head.queuedAt < coldListenDelayMs) return ids(warm);
  const others = new Set<string>();
  for (const job of queue.slice(1, LISTENING_LOOKAHEAD + 1))
    if (job.cacheKey !== head.cacheKey) others.add(job.cacheKey);
  const spare = stores.filter((store) => warmFor(store) || !store.cacheKeys.some((key) => others.has(key)));
  return spare.some(free) ? ids(spare) : ids(stores);
}

const ids = (stores: readonly ListeningStore[]) => new Set(stores.map((store) => store.id));
