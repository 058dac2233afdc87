import { namesStores, type PoolConfig } from "../pools";
import type { PoolDemand } from "./forecast";
import type { PlanCounts, PlannerInstance, PoolPlan, QueuedGroup, RunningJob } from "./types";

/**
 * One pool's plan. The policy, in the order it decides:
 *
 * 1. Jobs waiting for a slot (queued, plus those on draining instances, which will be retried) are
 *    served from free slots on instances in service, then by resuming Stopped warm-pool instances
 *    (seconds, store intact), then by new spot instances in the burst group, up to `maxInstances`
 *    (which counts the instances on their way into the warm pool: they run until stopped).
 * 2. When a queued job has no free slot warm for its cache key but stopped stores are warm for it,
 *    enough of the warm pool resumes that one of those stores is very likely among them: AWS picks
 *    which warm-pool instances start. Where Hearth names the stores (`warm.market: spot`), it starts
 *    those that give each queued job a warm slot (`storesForQueue`), then as many more, the most
 *    valuable, as AWS would have started, or, if more, a spare beside every five the waiting jobs rely
 *    on (`spareStarts`: a spot start may find no capacity). Those that get no job go back after
 *    `idleTimeouts.warmSeconds`.
 * 3. Idle instances past their idle timeout go while no job waits (one may be claiming a slot right
 *    now) and `minReady` does not need them: burst before warm, then the least valuable store
 *    (fewest recent jobs for its cache keys), then the longest idle. In a pool held for a retry, idle
 *    spot instances go even while jobs wait: they claim nothing, and their room serves on-demand. A warm instance's timeout is
 *    short, since stopping keeps its store and a resume takes seconds; a burst instance's is longer,
 *    since terminating throws its store away.
 * 4. The warm group (in service and stopped) is kept at the load the pool usually carries when jobs
 *    arrive, and at least the usual burst, so that those start within seconds on stores that know
 *    them (a spot warm group a tenth more, for its spare starts); it keeps what it has up to the
 *    largest load of the last day. Its warm pool is whatever of
 *    it is not in service, so resuming never makes AWS launch a replacement behind it. It grows only
 *    within the room `maxInstances` leaves beside the instances in service, or, while jobs wait,
 *    beside the forecast's burst if that is more.
 */
export function planOnePool(
  now: number,
  pool: PoolConfig,
  queued: readonly QueuedGroup[],
  running: readonly RunningJob[],
  instances: readonly PlannerInstance[],
  forecast: PoolDemand | undefined,
  onDemandFallback = false,
  queuedRetries = 0,
  held = false,
): PoolPlan {
  // A forecast stored by an older version may lack a field: missing figures count as zero.
  const demand = forecast === undefined ? noForecast : complete(forecast);
  const slots = pool.slotsPerInstance;
  const warmTimeout = 1000 * pool.idleTimeouts.warmSeconds;
  const burstTimeout = 1000 * pool.idleTimeouts.burstSeconds;

  // One pass over the instances.
  let warmServing = 0;
  let burstServing = 0;
  let freeSlots = 0;
  let joining = 0;
  // Spot warm stores booting, and the free slots of the other instances in service (not in doubt).
  let bootingSpot = 0;
  let sureSlots = 0;
  const stopped: PlannerInstance[] = [];
  const trusted: PlannerInstance[] = [];
  const idle: PlannerInstance[] = [];
  let draining: Set<string> | undefined;
  let recheckAt: number | null = null;
  for (const i of instances) {
    if (i.state === "launching" || i.state === "ready") {
      if (i.group === "warm") warmServing++;
      else burstServing++;
      // A suspect instance may be gone: its free slots are not counted on, and it is never released.
      if (i.heartbeatOverdue) continue;
      trusted.push(i);
      // A held pool's spot runners do not listen: their free slots serve no queued job.
      if (!(held && i.market === "spot")) {
        const free = Math.max(0, i.slots - i.busySlots);
        freeSlots += free;
        if (i.state === "launching" && i.group === "warm" && i.market === "spot") bootingSpot++;
        else sureSlots += free;
      }
      if (i.state === "ready" && i.busySlots === 0 && i.idleSince !== null) {
        const due = i.idleSince + (i.group === "burst" ? burstTimeout : warmTimeout);
        if (due <= now) idle.push(i);
        else recheckAt = recheckAt === null ? due : Math.min(recheckAt, due);
      }
    } else if (i.state === "draining") {
      draining ??= new Set();
      draining.add(i.id);
    }
    // A store stopped by a spot interruption waits for EC2, not for the planner: not counted at all.
    else if (i.waitsForCapacity) continue;
    else if (i.group === "warm" && i.state === "stopped") stopped.push(i);
    else if (i.group === "warm" && i.state === "stopping") joining++;
  }
  let queuedCount = 0;
  for (const group of queued) queuedCount += group.count;
  let rehome = 0;
  if (draining !== undefined) for (const job of running) if (draining.has(job.instanceId)) rehome++;
  const waiting = queuedCount + rehome;

  // 1 and 2: capacity for the waiting jobs and the ready minimum.
  const reserve = pool.warm.minReady * slots;
  let missing = Math.max(0, Math.ceil((waiting + reserve - freeSlots) / slots));
  // 3a: a held pool's idle spot instances claim nothing until the hold ends, yet count against
  // `maxInstances`: they go even while jobs wait, so that the on-demand capacity the queue (and the
  // retry) needs has room. Otherwise a full pool waits for its hold to run out.
  const deaf = held ? idle.filter((i) => i.market === "spot") : [];
  // Instances on their way into the warm pool run too (a new store booting to be parked, or one
  // being stopped): they count against `maxInstances` until stopped, or a burst launched beside
  // stores parked as it began would take the pool past its limit.
  let room = Math.max(0, pool.maxInstances - warmServing - burstServing - joining + deaf.length);
  // 1b: retried jobs lost their first run to the spot market. The capacity they need is launched
  // on-demand in the warm group rather than on spot. While the pool holds its spot runners for a
  // retry, only on-demand slots listen: all of its new capacity is on-demand.
  let launchForRetries = 0;
  // The instances queued retries need (a held pool's: all that is missing).
  const retryInstances = Math.ceil(Math.min(queuedRetries, queuedCount) / slots);
  const retriesOnDemand = held || (pool.retryOnDemand && queuedRetries > 0);
  if (namesStores(pool) && retriesOnDemand) {
    // A spot warm group's stopped stores are spot capacity too: retries come before resumes.
    launchForRetries = Math.min(missing, room, held ? missing : retryInstances);
    missing -= launchForRetries;
    room -= launchForRetries;
  }
  // A held pool's stopped spot stores would not listen either.
  const resumable = held && namesStores(pool) ? 0 : Math.min(stopped.length, room);
  let resume = Math.min(missing, resumable);
  const neededResumes = resume;
  const chosen = namesStores(pool) ? storesForQueue(queued, trusted, stopped) : [];
  if (resume < resumable) {
    // Named stores come first; as many more as an Auto Scaling warm pool would resume for warmth
    // follow, the most valuable: a pipeline's jobs arrive over seconds and popular keys come back,
    // and a store up for a minute that catches one warm costs a fraction of a cent at the spot price.
    const forWarmth = resumeForWarmth(queued, trusted, stopped);
    const spares = namesStores(pool)
      ? spareStarts(Math.ceil(Math.max(0, waiting - sureSlots) / slots), bootingSpot + resume)
      : 0;
    resume = Math.max(resume, Math.min(resumable, Math.max(chosen.length, forWarmth, resume + spares)));
  }
  missing = Math.max(0, missing - resume);
  room -= resume;
  let launch = Math.min(missing, room);
  if (!namesStores(pool) && retriesOnDemand && launch > 0) {
    launchForRetries = held ? launch : Math.min(launch, Math.max(0, retryInstances - resume));
    launch -= launchForRetries;
  }
  const resumeStores = namesStores(pool) ? chooseResumes(chosen, stopped, resume, demand) : [];

  // 3: release idle capacity, only while no job waits: a runner on an idle instance may be claiming
  // a queued job right now, and an unprotected instance could be taken down under it. (A held
  // pool's spot instances claim nothing: 3a.)
  let spare = waiting > 0 ? 0 : freeSlots - reserve;
  const release: PlannerInstance[] = [...deaf];
  for (const instance of releaseOrder(deaf.length ? idle.filter((i) => !deaf.includes(i)) : idle, demand)) {
    if (spare < instance.slots) break;
    spare -= instance.slots;
    release.push(instance);
  }
  const releasedWarm = release.filter((i) => i.group === "warm").length;
  const desiredWarm = warmServing - releasedWarm + resume + launchForRetries;
  const desiredBurst = burstServing - (release.length - releasedWarm) + launch;

  // 4: the warm group's size, and so its warm pool.
  const forecastStores = Math.ceil(Math.max(demand.burstJobs, demand.loadJobs) / slots);
  // A spot warm group keeps a tenth more stores, one at least: what spare starts (`spareStarts`) start.
  const usual =
    namesStores(pool) && forecastStores > 0
      ? forecastStores + Math.ceil(forecastStores / SPARE_STORES_PER)
      : forecastStores;
  const largest = Math.ceil(Math.max(demand.peakBurstJobs, demand.peakJobs) / slots);
  const warmGroup = warmServing + stopped.length + joining;
  // Without a forecast (not computed yet, or lost), keep the stores there are rather than none.
  const keep = forecast === undefined ? warmGroup : Math.min(warmGroup, largest);
  const prepared = Math.max(usual, keep, desiredWarm);
  // New stores are worth launching into the warm pool only if they can be resumed: not while the
  // instances in service leave no room under `maxInstances` (a burst on spot). Those would boot now,
  // competing with the burst, and then wait stopped; the stores already there are kept. And while
  // jobs wait, a burst may still be arriving (a pipeline's jobs reach Hearth over seconds): a new
  // store takes only the room left once the forecast's burst is in service, or it holds room while
  // it boots to be parked, and the burst's last jobs wait for it to boot, stop and resume.
  const kept = stopped.length - resume + joining;
  const inService = desiredWarm + desiredBurst;
  const roomLeft = Math.max(
    0,
    pool.maxInstances - (waiting > 0 ? Math.max(inService, forecastStores) : inService),
  );
  const warmPoolSize = Math.min(pool.warm.warmPoolSize, prepared - desiredWarm, Math.max(kept, roomLeft));

  const counts: PlanCounts = {
    queued: queuedCount,
    rehome,
    freeSlots,
    resume,
    launch,
    reserve,
    ...(launchForRetries > 0 ? { launchForRetries } : {}),
    ...(resume > neededResumes ? { resumeForWarmth: resume - neededResumes } : {}),
  };
  return {
    pool: pool.name,
    desiredWarm,
    desiredBurst,
    warmPoolSize,
    release: release.map((i) => i.id),
    resumeStores,
    reason: describe(
      counts,
      release.length,
      missing - launch - launchForRetries,
      burstMarket(pool, onDemandFallback),
    ),
    recheckAt,
    counts,
  };
}

const noForecast: PoolDemand = {
  burstJobs: 0,
  peakBurstJobs: 0,
  peakJobs: 0,
  loadJobs: 0,
  jobsPerHour: 0,
  keyWeights: {},
};

/** The forecast with every figure: as given when it has them all (a copy costs at every plan), else completed with zeros. */
function complete(forecast: PoolDemand): PoolDemand {
  for (const field in noForecast)
    if (forecast[field as keyof PoolDemand] === undefined) return { ...noForecast, ...forecast };
  return forecast;
}

/**
 * A spot store's start may find no spot capacity, and the job waiting for it then waits for another
 * start (in the fleet model, one start in ten fails after 10 s). While jobs wait, one spare store
 * starts beside every `SPOT_STARTS_PER_SPARE` spot stores they rely on (starting or booting).
 */
export const SPOT_STARTS_PER_SPARE = 5;

/** A spot warm group keeps one spare stopped store per this many its forecast asks for (and one at least). */
export const SPARE_STORES_PER = 10;

/**
 * How many spare stores to start when the waiting jobs rely on `relied` spot stores booting or
 * starting, and `starting` are: one per `SPOT_STARTS_PER_SPARE` relied on, less those already
 * booting or starting beyond them.
 */
export function spareStarts(relied: number, starting: number): number {
  if (relied <= 0) return 0;
  const wanted = Math.ceil(relied / SPOT_STARTS_PER_SPARE);
  return Math.max(0, wanted - Math.max(0, starting - relied));
}

/** How sure the planner wants to be of getting a warm store back when it resumes for one. */
const warmthConfidence = 0.95;

/**
 * How many warm-pool instances to resume so that, for each queued cache key no free slot is warm for,
 * a store warm for it is among them with probability `confidence`. AWS picks which instances
 * resume, at random as far as Hearth can tell: with m of n stopped stores warm for a key, resuming
 * k misses them all with probability C(n-m, k) / C(n, k).
 */
export function resumeForWarmth(
  queued: readonly QueuedGroup[],
  serving: readonly PlannerInstance[],
  stopped: readonly PlannerInstance[],
  confidence = warmthConfidence,
): number {
  if (queued.length === 0 || stopped.length === 0) return 0;
  let needed = 0;
  const n = stopped.length;
  // Each queued key appears in one group: no key is counted twice.
  for (const group of queued) {
    const key = group.cacheKey;
    if (key === null || group.count === 0 || freeSlotWarmFor(serving, key)) continue;
    let m = 0;
    for (const i of stopped) if (i.cacheKeys.includes(key)) m++;
    if (m === 0) continue;
    // Smallest k with P(miss) = prod_{j<k} (n-m-j)/(n-j) <= 1 - confidence.
    let miss = 1;
    let k = 0;
    while (k < n && miss > 1 - confidence) {
      miss *= Math.max(0, n - m - k) / (n - k);
      k++;
    }
    needed = Math.max(needed, k);
  }
  return needed;
}

/** Some instance in service has a free slot and a store warm for `key`. */
function freeSlotWarmFor(serving: readonly PlannerInstance[], key: string): boolean {
  for (const i of serving) if (i.busySlots < i.slots && i.cacheKeys.includes(key)) return true;
  return false;
}

/**
 * The stopped stores the queue needs, when Hearth names which one starts: each queued job, oldest
 * first, gets a free slot warm for its cache key, on an instance in service if one has it, or else
 * on a stopped store warm for it (the most recently used of them), whose other slots then serve the
 * next jobs. A key with more queued jobs than one store's slots gets as many stores as it needs.
 */
export function storesForQueue(
  queued: readonly QueuedGroup[],
  serving: readonly PlannerInstance[],
  stopped: readonly PlannerInstance[],
): PlannerInstance[] {
  if (queued.length === 0 || stopped.length === 0) return [];
  const groups = queued
    .filter((group) => group.cacheKey !== null && group.count > 0)
    .sort((a, b) => a.oldestQueuedAt - b.oldestQueuedAt);
  if (groups.length === 0) return [];
  // Instances in service with a free slot first, by id, then the stores chosen, in order: the plan
  // does not depend on the order instances are listed in. (Parallel arrays: the planner runs at
  // every iteration of every run, and the simulator replays hundreds of thousands.)
  const free: PlannerInstance[] = [];
  for (const i of serving) if (i.busySlots < i.slots) free.push(i);
  if (!sortedById(free)) free.sort(byId);
  const left = free.map((i) => i.slots - i.busySlots);
  const chosen: PlannerInstance[] = [];
  for (const group of groups) {
    const key = group.cacheKey as string;
    for (let job = 0; job < group.count; job++) {
      let slot = -1;
      for (let at = 0; at < free.length; at++) {
        if ((left[at] as number) > 0 && (free[at] as PlannerInstance).cacheKeys.includes(key)) {
          slot = at;
          break;
        }
      }
      if (slot < 0) {
        const store = mostRecentWarmFor(stopped, free, key);
        // No store left warm for this key: its other jobs find none either.
        if (store === undefined) break;
        chosen.push(store);
        slot = free.push(store) - 1;
        left.push(store.slots);
      }
      left[slot] = (left[slot] as number) - 1;
    }
  }
  return chosen;
}

const byId = (a: PlannerInstance, b: PlannerInstance): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function sortedById(instances: readonly PlannerInstance[]): boolean {
  for (let at = 1; at < instances.length; at++)
    if (byId(instances[at - 1] as PlannerInstance, instances[at] as PlannerInstance) > 0) return false;
  return true;
}

/**
 * The stopped store warm for `key` not among `free` (not chosen yet), the most recently launched, then
 * the first by id: the first of them in order of recency, found without sorting them all.
 */
function mostRecentWarmFor(
  stopped: readonly PlannerInstance[],
  free: readonly PlannerInstance[],
  key: string,
): PlannerInstance | undefined {
  let best: PlannerInstance | undefined;
  for (const i of stopped) {
    if (
      best !== undefined &&
      (i.launchedAt < best.launchedAt || (i.launchedAt === best.launchedAt && i.id > best.id))
    )
      continue;
    if (i.cacheKeys.includes(key) && !free.includes(i)) best = i;
  }
  return best;
}

/** The `count` stores to resume: those the queue needs, then the most valuable, then the most recent. */
function chooseResumes(
  chosen: readonly PlannerInstance[],
  stopped: readonly PlannerInstance[],
  count: number,
  demand: PoolDemand,
): string[] {
  const picked = chosen.slice(0, count).map((i) => i.id);
  if (picked.length >= count) return picked;
  const rest = stopped
    .filter((i) => !picked.includes(i.id))
    .map((instance) => ({ instance, value: storeValue(instance, demand) }))
    .sort(
      (a, b) =>
        b.value - a.value ||
        b.instance.launchedAt - a.instance.launchedAt ||
        (a.instance.id < b.instance.id ? -1 : 1),
    );
  for (const { instance } of rest) {
    if (picked.length >= count) break;
    picked.push(instance.id);
  }
  return picked;
}

/** How much a store is worth keeping: the recent jobs whose cache keys it is warm for. */
function storeValue(instance: PlannerInstance, demand: PoolDemand): number {
  let value = 0;
  for (const key of instance.cacheKeys) value += demand.keyWeights[key] ?? 0;
  return value;
}

/** Idle instances past their timeout, in the order they go. */
function releaseOrder(idle: readonly PlannerInstance[], demand: PoolDemand): PlannerInstance[] {
  if (idle.length <= 1) return [...idle];
  return idle
    .map((instance) => ({ instance, value: storeValue(instance, demand) }))
    .sort(
      (a, b) =>
        groupRank(a.instance) - groupRank(b.instance) ||
        a.value - b.value ||
        (a.instance.idleSince as number) - (b.instance.idleSince as number) ||
        (a.instance.id < b.instance.id ? -1 : a.instance.id > b.instance.id ? 1 : 0),
    )
    .map(({ instance }) => instance);
}

const groupRank = (instance: PlannerInstance): number => (instance.group === "burst" ? 0 : 1);

/** What the burst group launches: spot, unless configured otherwise or fallen back to on-demand. */
function burstMarket(pool: PoolConfig, onDemandFallback: boolean): string {
  const spotShare = onDemandFallback ? 0 : pool.burst.spotShare;
  if (spotShare >= 1) return "spot";
  if (spotShare <= 0) return "on-demand";
  return `burst (${Math.round(spotShare * 100)}% spot)`;
}

function describe(counts: PlanCounts, released: number, short: number, market: string): string {
  const parts: string[] = [];
  const waiting = counts.queued + counts.rehome;
  if (waiting > 0) parts.push(`${waiting} waiting for a slot, ${counts.freeSlots} free`);
  if (counts.resume > 0) parts.push(`resume ${counts.resume} from the warm pool`);
  if (counts.launchForRetries) parts.push(`launch ${counts.launchForRetries} on-demand for retried jobs`);
  if (counts.launch > 0) parts.push(`launch ${counts.launch} ${market}`);
  if (short > 0) parts.push(`${short} short at the instance limit`);
  if (released > 0) parts.push(`release ${released} idle`);
  return parts.length > 0 ? parts.join("; ") : "steady";
}
