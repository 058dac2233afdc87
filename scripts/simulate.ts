/**
 * npm run simulate -- --trace FILE --policy NAME|all [--json] [--seed N] [fleet model flags]
 *   [--interruption-rate-multiplier K] [--interruptions] [Hearth's retry flags, --no-retry-hold]
 *   [--binary-cache on|off|default] [--stores] [prototype flags] [pool settings]
 *
 * Replays a job trace (format: traces/README.md) through Hearth's planner and the
 * baselines on the same fleet model. With --json it prints the README's JSON array; otherwise a table.
 * `--interruptions` adds what spot interruptions cost (retries, extra wait, lost jobs) to each row,
 * `--stores` where each job's store came from (warm, substituted from the binary cache, cold).
 * The prototype flags (`--choose-resume`, `--instant-listening`, `--idle-listening all`, `--store-volumes`,
 * `--stopped-store-ttl` and their settings) model store mechanisms the product does not build yet:
 * each is off by default, so Hearth's default rows credit only what it ships.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_RETRY_INTERRUPTED,
  DEFAULT_WARM_MARKET,
  defaultPools,
  type WarmMarket,
  warmMarkets,
} from "../packages/core/src/pools";
import { HOLD_MAX_SECONDS } from "../packages/core/src/retries/holds";
import {
  defaultFleetModel,
  type FleetModel,
  type ForgeChoice,
  fleetModelSchema,
  forgeChoices,
  type InterruptionFigures,
  isPolicyName,
  type PolicyName,
  parseTrace,
  policyNames,
  type SimResult,
  type StoreFigures,
  simulate,
  TraceError,
  traceWarnings,
  withPoolSettings,
} from "../packages/core/src/simulation/trace";
import { HEARTBEAT_SECONDS } from "../packages/core/src/simulation/trace/policies/hearth-interruptions";

const modelFlags: Record<string, keyof FleetModel> = {
  slots: "slotsPerInstance",
  "cold-boot": "coldBootSeconds",
  "warm-boot": "warmBootSeconds",
  "on-demand-price": "onDemandHourly",
  "spot-price": "spotHourly",
  "stopped-price": "stoppedHourly",
  "store-keys": "storeKeys",
  "spot-interruptions": "spotInterruptionsPerHour",
  "spot-warning": "spotWarningSeconds",
  "webhook-delay": "webhookDelaySeconds",
  "max-instances": "maxInstancesPerPool",
  "cache-penalty": "cachePenaltySeconds",
  "cache-window": "cacheWindowSeconds",
  "volume-attach": "volumeAttachSeconds",
  zones: "zones",
  "spot-start-success": "spotStartSuccess",
  "spot-start-fail": "spotStartFailSeconds",
};

/** Model values only some runs read: the store-volume prototype's, and a spot warm group's starts. */
const prototypeModelFlags = new Set(["volume-attach", "zones"]);
const spotWarmModelFlags = new Set(["spot-start-success", "spot-start-fail"]);

const usage = `usage: npm run simulate -- --trace FILE [--trace FILE…] --policy NAME|all [--json] [--seed N]
  policies: ${policyNames.join(", ")}
  fleet model (defaults from traces/README.md):
${Object.entries(modelFlags)
  .map(
    ([flag, key]) =>
      `    --${flag} N  (default ${defaultFleetModel[key]})${prototypeModelFlags.has(flag) ? "  (read by the prototypes only)" : spotWarmModelFlags.has(flag) ? "  (read with --warm-market spot)" : ""}`,
  )
  .join("\n")}
  binary cache:
    --binary-cache on|off|default     the stage's binary cache for every policy run (default: Hearth, whose
                                      runner image substitutes from and pushes to its stage's cache, and
                                      the +cache variants have it; the other baselines do not)
    --stores                          adds where stores came from (warm, substituted, cold) and the
                                      achievable warm hits to each row
  spot interruptions:
    --interruption-rate-multiplier K  multiplies --spot-interruptions (default 1)
    --interruptions                   adds interruptions, retries, extra wait and lost jobs to each row
  Hearth's handling of interrupted jobs:
    --forge auto|github|gitlab        whose rules end and retry a job (default auto: GitHub for a job with labels)
    --retry-interrupted N             retries per interrupted job, 0 to 3 (default 2)
    --retry-on-demand true|false      a retry's new capacity is on-demand (default true)
    --no-retry-hold                   with --retry-on-demand, make a job's last retry at once instead of
                                      holding the pool's spot runners until it has started (the retry hold)
    --retry-hold-max S                a hold ends S seconds after it started at the latest (default 3600, the product's)
  Hearth's placement (built: which stores' free slots listen, decided by core's listeningStores):
    --placement warm-first|any        the pool setting placement (default warm-first); any: every free slot listens
    --cold-listen-delay S             the oldest queued job waits S s for a busy warm store (default 15)
    --listener-start S                a slot told to listen at its heartbeat (every 15 s) listens S s later (default 5)
  Hearth's warm group (built: the pool setting warm.market):
    --warm-market on-demand|spot      on-demand: an Auto Scaling warm pool (AWS picks which store resumes); spot:
                                      Hearth keeps it, persistent spot instances that stop on interruption, and
                                      names which stopped store starts (default: the pool setting's default)
  prototypes of store mechanisms Hearth does NOT build yet, each off by default: models of what the
  product would have to build, for measuring only; Hearth's default figures credit none of them:
    --choose-resume                   Hearth names the stopped store that resumes (warm for the oldest queued job)
    --resume-extra                    with --choose-resume, still resume the planner's extra stores (its step 2)
    --instant-listening               placement with no heartbeat lag (the optimistic bound no product reaches)
    --idle-listening all|none         free slots listen while their agent knows of no queued job (default none, as built)
    --store-volumes off|pinned|any-zone  stores on EBS volumes that outlive spot instances (warm group on spot)
    --volume-retention H              a detached store volume is deleted after H hours (default 24)
    --stopped-store-ttl H             a stopped store not resumed for H hours is terminated (default 0: never)
  pool settings (the default pools' values unless given):
    --warm-pool-max N                 pool setting warm.warmPoolSize: the most Stopped instances kept (default 50)
    --warm-idle S, --burst-idle S     pool settings idleTimeouts.warmSeconds (30) and burstSeconds (300)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n(--help lists the options)\n`);
  process.exit(2);
}

function main(): void {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      options: {
        trace: { type: "string", multiple: true },
        policy: { type: "string", default: "all" },
        json: { type: "boolean", default: false },
        seed: { type: "string", default: "1" },
        help: { type: "boolean", default: false },
        "interruption-rate-multiplier": { type: "string", default: "1" },
        interruptions: { type: "boolean", default: false },
        "binary-cache": { type: "string", default: "default" },
        stores: { type: "boolean", default: false },
        "choose-resume": { type: "boolean", default: false },
        "resume-extra": { type: "boolean", default: false },
        placement: { type: "string", default: "warm-first" },
        "cold-listen-delay": { type: "string", default: "15" },
        "listener-start": { type: "string", default: "5" },
        "instant-listening": { type: "boolean", default: false },
        "idle-listening": { type: "string", default: "none" },
        "store-volumes": { type: "string", default: "off" },
        "volume-retention": { type: "string", default: "24" },
        "warm-market": { type: "string", default: DEFAULT_WARM_MARKET },
        "stopped-store-ttl": { type: "string", default: "0" },
        "warm-pool-max": { type: "string" },
        "warm-idle": { type: "string" },
        "burst-idle": { type: "string" },
        forge: { type: "string", default: "auto" },
        "retry-interrupted": { type: "string", default: String(DEFAULT_RETRY_INTERRUPTED) },
        "retry-on-demand": { type: "string", default: "true" },
        "no-retry-hold": { type: "boolean", default: false },
        "retry-hold-max": { type: "string", default: String(HOLD_MAX_SECONDS) },
        ...Object.fromEntries(Object.keys(modelFlags).map((flag) => [flag, { type: "string" as const }])),
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const files = (values.trace as string[] | undefined) ?? [];
  if (files.length === 0) fail("--trace is required");
  const policyArg = values.policy as string;
  const policies: PolicyName[] = policyArg === "all" ? [...policyNames] : [];
  if (policyArg !== "all") {
    for (const name of policyArg.split(",")) {
      if (!isPolicyName(name)) fail(`unknown policy ${name}`);
      policies.push(name);
    }
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) fail(`--seed must be an integer, got ${values.seed}`);
  const model: Partial<FleetModel> = {};
  for (const [flag, key] of Object.entries(modelFlags)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) fail(`--${flag} must be a non-negative number, got ${raw}`);
    model[key] = value;
  }
  // The model's own bounds (whole slots, at least one instance, a probability), flag by flag.
  const checked = fleetModelSchema.safeParse(model);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const key = issue?.path[0];
    const flag = Object.entries(modelFlags).find(([, name]) => name === key)?.[0] ?? String(key);
    fail(`--${flag} ${String(model[key as keyof FleetModel])}: ${issue?.message ?? "invalid"}`);
  }
  const multiplier = Number(values["interruption-rate-multiplier"]);
  if (!Number.isFinite(multiplier) || multiplier < 0)
    fail(
      `--interruption-rate-multiplier must be a non-negative number, got ${values["interruption-rate-multiplier"]}`,
    );
  const forge = values.forge as string;
  if (!(forgeChoices as readonly string[]).includes(forge))
    fail(`--forge must be one of ${forgeChoices.join(", ")}, got ${forge}`);
  const retryInterrupted = Number(values["retry-interrupted"]);
  if (!Number.isInteger(retryInterrupted) || retryInterrupted < 0 || retryInterrupted > 3)
    fail(`--retry-interrupted must be an integer from 0 to 3, got ${values["retry-interrupted"]}`);
  const onDemand = values["retry-on-demand"] as string;
  if (onDemand !== "true" && onDemand !== "false")
    fail(`--retry-on-demand must be true or false, got ${onDemand}`);
  const holdMax = Number(values["retry-hold-max"]);
  if (!Number.isFinite(holdMax) || holdMax < 0)
    fail(`--retry-hold-max must be a non-negative number of seconds, got ${values["retry-hold-max"]}`);
  const cacheArg = values["binary-cache"] as string;
  if (!["on", "off", "default"].includes(cacheArg))
    fail(`--binary-cache must be on, off or default, got ${cacheArg}`);
  const binaryCache = cacheArg === "default" ? undefined : cacheArg === "on";
  const coldListenDelay = Number(values["cold-listen-delay"]);
  if (!Number.isFinite(coldListenDelay) || coldListenDelay < 0)
    fail(`--cold-listen-delay must be a non-negative number of seconds, got ${values["cold-listen-delay"]}`);
  const listenerStart = Number(values["listener-start"]);
  if (!Number.isFinite(listenerStart) || listenerStart < 0)
    fail(`--listener-start must be a non-negative number of seconds, got ${values["listener-start"]}`);
  const placement = values.placement as string;
  if (placement !== "warm-first" && placement !== "any")
    fail(`--placement must be warm-first or any, got ${placement}`);
  const idleListening = values["idle-listening"] as string;
  if (idleListening !== "all" && idleListening !== "none")
    fail(`--idle-listening must be all or none, got ${idleListening}`);
  const storeVolumes = values["store-volumes"] as string;
  if (storeVolumes !== "off" && storeVolumes !== "pinned" && storeVolumes !== "any-zone")
    fail(`--store-volumes must be off, pinned or any-zone, got ${storeVolumes}`);
  const retention = Number(values["volume-retention"]);
  if (!Number.isFinite(retention) || retention < 0)
    fail(`--volume-retention must be a non-negative number of hours, got ${values["volume-retention"]}`);
  const setting = (flag: string): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) fail(`--${flag} must be a non-negative integer, got ${raw}`);
    return value;
  };
  const warmPoolMax = setting("warm-pool-max");
  const warmIdle = setting("warm-idle");
  const burstIdle = setting("burst-idle");
  const pools =
    warmPoolMax === undefined && warmIdle === undefined && burstIdle === undefined
      ? undefined
      : withPoolSettings(defaultPools, {
          warm: warmPoolMax === undefined ? {} : { warmPoolSize: warmPoolMax },
          idleTimeouts: {
            ...(warmIdle === undefined ? {} : { warmSeconds: warmIdle }),
            ...(burstIdle === undefined ? {} : { burstSeconds: burstIdle }),
          },
        });
  const warmMarket = values["warm-market"] as string;
  if (!(warmMarkets as readonly string[]).includes(warmMarket))
    fail(`--warm-market must be ${warmMarkets.join(" or ")}, got ${warmMarket}`);
  const stoppedTtl = Number(values["stopped-store-ttl"]);
  if (!Number.isFinite(stoppedTtl) || stoppedTtl < 0)
    fail(`--stopped-store-ttl must be a non-negative number of hours, got ${values["stopped-store-ttl"]}`);
  const hearth = {
    placement: {
      placement: placement as "warm-first" | "any",
      coldListenDelaySeconds: coldListenDelay,
      heartbeatSeconds: HEARTBEAT_SECONDS,
      listenerStartSeconds: listenerStart,
    },
    mechanisms: {
      chooseResume: values["choose-resume"] as boolean,
      resumeOnlyNeeded: !values["resume-extra"],
      instantListening: values["instant-listening"] as boolean,
      idleListening: idleListening as "all" | "none",
      storeVolumes: storeVolumes as "off" | "pinned" | "any-zone",
      volumeRetentionHours: retention,
      stoppedStoreTtlHours: stoppedTtl,
    },
    warmMarket: warmMarket as WarmMarket,
    forge: forge as ForgeChoice,
    retryInterrupted,
    retryOnDemand: onDemand === "true",
    retryHold: !values["no-retry-hold"],
    retryHoldMaxSeconds: holdMax,
  };

  const results: Row[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      fail(`cannot read ${file}: ${(error as Error).message}`);
    }
    let trace: ReturnType<typeof parseTrace>;
    try {
      trace = parseTrace(text, basename(file));
    } catch (error) {
      if (error instanceof TraceError) {
        process.stderr.write(`${error.message}\n`);
        process.exit(1);
      }
      throw error;
    }
    if (trace.resorted)
      process.stderr.write(`${trace.name}: rows were not sorted by created_at_s; sorted them\n`);
    for (const warning of traceWarnings(trace)) process.stderr.write(`${trace.name}: ${warning}\n`);
    let reported = false;
    for (const policy of policies) {
      const started = performance.now();
      const { details, ...result } = simulate(trace, {
        policy,
        seed,
        model,
        hearth,
        interruptionRateMultiplier: multiplier,
        ...(pools === undefined ? {} : { pools }),
        ...(binaryCache === undefined ? {} : { binaryCache }),
      });
      const seconds = (performance.now() - started) / 1000;
      if (!reported && details.unroutable.length > 0) {
        reported = true;
        const reasons = new Map<string, number>();
        for (const { reason } of details.unroutable) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        process.stderr.write(
          `${trace.name}: ${details.unroutable.length} of ${result.jobs} jobs are unroutable (counted as lost):\n${[
            ...reasons,
          ]
            .map(([reason, count]) => `  ${count} × ${reason}`)
            .join("\n")}\n`,
        );
      }
      results.push({
        ...rounded(result),
        ...(values.interruptions ? { interruptions: roundedFigures(details.interruptions) } : {}),
        ...(values.stores ? { stores: details.stores } : {}),
      });
      if (!values.json) process.stderr.write(`  ${trace.name} ${policy}: ${seconds.toFixed(2)} s\n`);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else process.stdout.write(table(results));
}

/** A README row, with what interruptions cost when `--interruptions` asks for it. */
type Row = SimResult & { interruptions?: InterruptionFigures; stores?: StoreFigures };

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

function roundedFigures(figures: InterruptionFigures): InterruptionFigures {
  return {
    ...figures,
    extraWaitTotal: round(figures.extraWaitTotal, 1),
    extraWaitP50: round(figures.extraWaitP50, 1),
    extraWaitP95: round(figures.extraWaitP95, 1),
    extraWaitMax: round(figures.extraWaitMax, 1),
    redoneSeconds: round(figures.redoneSeconds, 1),
  };
}

function rounded(result: SimResult): SimResult {
  return {
    ...result,
    waitP50: round(result.waitP50, 1),
    waitP95: round(result.waitP95, 1),
    waitMax: round(result.waitMax, 1),
    costUsd: round(result.costUsd, 4),
    instanceHours: round(result.instanceHours, 2),
    warmHitRate: round(result.warmHitRate, 4),
  };
}

function storeCells(stores: StoreFigures): string[] {
  const started = stores.warm + stores.substituted + stores.cold;
  const share = (n: number, of: number) => (of === 0 ? "-" : ((100 * n) / of).toFixed(1));
  return [
    stores.binaryCache ? "on" : "off",
    share(stores.substituted, started),
    share(stores.achievable, started),
    share(stores.warmOfAchievable, stores.achievable),
  ];
}

export function table(results: readonly Row[]): string {
  const header = [
    "trace",
    "policy",
    "jobs",
    "p50 s",
    "p95 s",
    "max s",
    "cost $",
    "inst-h",
    "warm %",
    "intr",
    "lost",
    ...(results.some((r) => r.interruptions) ? ["retries", "extra wait p95 s", "lost to intr"] : []),
    ...(results.some((r) => r.stores) ? ["cache", "subst %", "achievable %", "warm/achv %"] : []),
  ];
  const rows = results.map((r) => [
    r.trace,
    r.policy,
    String(r.jobs),
    r.waitP50.toFixed(1),
    r.waitP95.toFixed(1),
    r.waitMax.toFixed(0),
    r.costUsd.toFixed(2),
    r.instanceHours.toFixed(1),
    (100 * r.warmHitRate).toFixed(1),
    String(r.interruptedJobs),
    String(r.lostJobs),
    ...(r.interruptions
      ? [
          String(r.interruptions.retries),
          r.interruptions.extraWaitP95.toFixed(0),
          String(r.interruptions.lostToInterruptions),
        ]
      : []),
    ...(r.stores ? storeCells(r.stores) : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i < 2 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join("  ");
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

main();
