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

/**
 * A store warm for the oldest job, booting, was started for it at once if it was started at most this
 * long after the job was queued: the job's webhook, its ScaleFleet run and the start take a few
 * seconds (the forge's queueing time is the reference, so its delivery counts too).
 */
export const PROMPT_START_MS = 10_000;

/**
 * Once the oldest queued job has waited this long, every store listens: the stores placement chose
 * are not taking it (a store that never frees up, a runner that does not start, a job the ledger
 * still has queued that the forge does not), and placing it costs more than it may save.
 */
export const PLACEMENT_GIVE_UP_MS = 120_000;

/** How many queued jobs after the oldest one placement looks at to keep their warm stores free. */
export const LISTENING_LOOKAHEAD = 64;

/**
 * The ids of the stores that listen now, for a pool whose queued jobs are `queue` (oldest first).
 *
 * - No job queued: none listens.
 * - A ready store warm for the oldest job has a free slot: only stores warm for it listen.
 * - A store warm for it is booting: only stores warm for it listen; the job waits for it, at most
 *   until `STORE_BOOT_WAIT_MS` after its launch. One started later than `PROMPT_START_MS` after the
 *   job was queued counts as busy while another store has a free slot: every job queued behind the
 *   oldest would wait for it too.
 * - Stores warm for it are all busy: only they listen, until the job has waited `coldListenDelayMs`.
 * - Otherwise cold stores listen too, except those warm for the next queued jobs while another store
 *   with a free slot can take it; if none can, every store listens.
 * - Every store listens once the job has waited `PLACEMENT_GIVE_UP_MS`.
 */
export function listeningStores(
  queue: readonly ListeningJob[],
  stores: readonly ListeningStore[],
  now: number,
  coldListenDelayMs: number = COLD_LISTEN_DELAY_MS,
): Set<string> {
  const head = queue[0];
  if (head === undefined) return new Set();
  return listeningStoresFor(head, () => laterKeys(queue), stores, now, coldListenDelayMs);
}

/** The keys of the queued jobs after the oldest one, as far as placement looks. */
function* laterKeys(queue: readonly ListeningJob[]): Iterable<string> {
  const end = Math.min(queue.length, LISTENING_LOOKAHEAD + 1);
  for (let index = 1; index < end; index++) yield (queue[index] as ListeningJob).cacheKey;
}

/**
 * `listeningStores` for the oldest queued job `head`, with the keys of the next queued jobs read
 * only when cold stores listen (the simulator reads them from its own queue).
 */
export function listeningStoresFor(
  head: ListeningJob,
  later: () => Iterable<string>,
  stores: readonly ListeningStore[],
  now: number,
  coldListenDelayMs: number = COLD_LISTEN_DELAY_MS,
): Set<string> {
  if (now - head.queuedAt >= PLACEMENT_GIVE_UP_MS) return new Set(stores.map((store) => store.id));
  const key = head.cacheKey;
  const warm = new Set<string>();
  let warmFree = false;
  let warmBooting = false;
  let warmBusy = false;
  for (const store of stores) {
    if (!store.cacheKeys.includes(key)) continue;
    warm.add(store.id);
    if (store.state === "ready") {
      if (store.freeSlots > 0) warmFree = true;
      else warmBusy = true;
    } else if (store.state === "booting" && now - store.launchedAt < STORE_BOOT_WAIT_MS) {
      // Started for the job at once, it comes up with the stores started with it. Started later (a
      // start tried again when spot had no capacity, a later iteration) while other stores can take
      // a job now, it would keep every job queued behind this one waiting: it counts as busy.
      if (store.launchedAt - head.queuedAt > PROMPT_START_MS && anyFree(stores)) warmBusy = true;
      else warmBooting = true;
    }
  }
  if (warmFree || warmBooting) return warm;
  if (warmBusy && now - head.queuedAt < coldListenDelayMs) return warm;
  const others = new Set<string>();
  for (const other of later()) if (other !== key) others.add(other);
  const spare = new Set<string>();
  let spareFree = false;
  for (const store of stores) {
    if (!warm.has(store.id) && holdsAny(store.cacheKeys, others)) continue;
    spare.add(store.id);
    if (store.state === "ready" && store.freeSlots > 0) spareFree = true;
  }
  if (spareFree) return spare;
  return new Set(stores.map((store) => store.id));
}

function anyFree(stores: readonly ListeningStore[]): boolean {
  for (const store of stores) if (store.state === "ready" && store.freeSlots > 0) return true;
  return false;
}

function holdsAny(keys: readonly string[], wanted: ReadonlySet<string>): boolean {
  for (const key of keys) if (wanted.has(key)) return true;
  return false;
}
