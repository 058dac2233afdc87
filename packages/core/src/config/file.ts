import { existsSync, readFileSync } from "node:fs";
import * as z from "zod";
import { defaultPools, type PoolConfig, poolsConfigSchema } from "../pools";
import { ConfigError } from "./error";
import { describeConfigIssues, strictObject } from "./keys";

/**
 * Hearth's own configuration file, `hearth.config.json` at the repository root (or `$HEARTH_CONFIG`).
 * It is optional: without it every stage, and local mode, run `defaultPools` with the defaults below.
 *
 * ```json
 * {
 *   "pools": [{ "name": "x86_64", "labels": ["nix"], "architecture": "x86_64", "instanceTypes": ["c7a.xlarge"] }],
 *   "github": { "apiUrl": "https://github.example.com/api/v3" },
 *   "stages": {
 *     "production": { "alarms": { "email": "ops@example.com" }, "fleet": { "rootVolumeGiB": 200 } }
 *   }
 * }
 * ```
 *
 * Top-level settings apply to every stage and to local mode; `stages.<name>` replaces any of them
 * for one stage (each key as a whole: a stage's `pools` replaces the list, its `alarms` the object).
 */

const thresholds = strictObject({
  /** Alarm when a pool's oldest queued job has waited this long (seconds), 5 minutes running. */
  oldestQueuedSeconds: z.number().int().min(60).max(86_400).default(900),
  /** Alarm when more than this share (%) of webhook deliveries is rejected (4xx), 15 minutes running. */
  webhookRejectedPercent: z.number().min(1).max(100).default(25),
  /** Alarm when more than this share (%) of API requests fails with a 5xx, 10 minutes running. */
  api5xxPercent: z.number().min(0.1).max(100).default(5),
  /** A 5-minute share is computed only from this many requests on: fewer are not a rate. */
  minimumRequests: z.number().int().min(1).max(10_000).default(5),
  /** Alarm when a function fails this often within 5 minutes. */
  lambdaErrors: z.number().int().min(1).max(10_000).default(3),
  /** Alarm when ScaleFleet executions fail or time out in 2 of the last 3 five-minute periods. */
  scaleFleetFailures: z.number().int().min(1).max(1000).default(1),
  /** Alarm when a job no pool can run has been queued this long (seconds), 5 minutes running. */
  unroutableAfterSeconds: z.number().int().min(60).max(86_400).default(600),
  /** Alarm when more than this many of a pool's spot instances are interrupted within an hour. */
  interruptionsPerHour: z.number().int().min(1).max(10_000).default(10),
  /** Alarm when a store's oldest build not yet pushed to the binary cache has waited this long (seconds), 10 minutes running. */
  pushLagSeconds: z.number().int().min(300).max(604_800).default(3600),
  /** Alarm when a store has had less than this much disk free (GiB), 15 minutes running. */
  freeDiskGiB: z.number().min(1).max(16_384).default(5),
});

/** GitHub.com's REST API. */
export const DEFAULT_GITHUB_API_URL = "https://api.github.com";

/** Reconciliation: polling for missed webhooks, and the sweep of ghosts and orphans. */
export const reconciliationSchema = strictObject({
  /** Poll the forges for jobs whose webhook never came, this often (minutes). */
  pollMinutes: z.number().int().min(1).max(60).default(1),
  /** Sweep the ledger, the cloud and the forges' runners, this often (minutes). */
  sweepMinutes: z.number().int().min(1).max(60).default(5),
  /** The share of each forge token's rate limit that polling and the sweep may spend together. */
  budgetShare: z.number().min(0.01).max(0.5).default(0.1),
  /** The sweep journals what it would do, and does nothing destructive. */
  dryRun: z.boolean().default(false),
});
export type ReconciliationSettings = z.infer<typeof reconciliationSchema>;

const settingsShape = {
  pools: poolsConfigSchema.optional(),
  reconciliation: reconciliationSchema.optional(),
  gitlab: strictObject({
    /** The GitLab instance whose API resolves job tags (self-managed or gitlab.com). */
    url: z.url({ protocol: /^https?$/ }).default("https://gitlab.com"),
  }).optional(),
  github: strictObject({
    /**
     * GitHub's REST API: `https://api.github.com`, or a GitHub Enterprise Server's
     * `https://<host>/api/v3`. Every call the control plane makes goes there, retries included.
     */
    apiUrl: z.url({ protocol: /^https?$/ }).default(DEFAULT_GITHUB_API_URL),
  }).optional(),
  alarms: strictObject({
    /** Alarm notifications go to this address (SNS asks it to confirm the subscription). */
    email: z.email().optional(),
    thresholds: thresholds.prefault({}),
  }).optional(),
  fleet: strictObject({
    /** The root EBS volume, which holds the Nix store: it is what keeps a stopped instance warm. */
    rootVolumeGiB: z.number().int().min(20).max(16_384).default(100),
    /** Per pool, when some pools build more than others. */
    rootVolumeGiBByPool: z.record(z.string(), z.number().int().min(20).max(16_384)).default({}),
    /** The root device of the AMI (NixOS images use /dev/xvda). */
    rootDeviceName: z
      .string()
      .regex(/^\/dev\/[a-z0-9]+$/)
      .default("/dev/xvda"),
    /** Subnets for the runners; the default VPC's default subnets when absent. */
    subnetIds: z
      .array(z.string().regex(/^subnet-[0-9a-f]+$/))
      .min(1)
      .optional(),
    /** The VPC of `subnetIds` (required with them). */
    vpcId: z
      .string()
      .regex(/^vpc-[0-9a-f]+$/)
      .optional(),
    /** An existing S3 bucket for the Nix binary cache; Hearth creates one when absent. */
    binaryCacheBucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
      .optional(),
  })
    .refine((fleet) => (fleet.subnetIds === undefined) === (fleet.vpcId === undefined), {
      message: "set both fleet.vpcId and fleet.subnetIds, or neither (the default VPC)",
    })
    .optional(),
} as const;

const stageSchema = strictObject(settingsShape);

export const hearthConfigSchema = strictObject({
  ...settingsShape,
  stages: z.record(z.string(), stageSchema).default({}),
});
export type HearthConfig = z.infer<typeof hearthConfigSchema>;
export type HearthConfigInput = z.input<typeof hearthConfigSchema>;

/** Everything a stage needs, defaults filled in. */
export interface StageSettings {
  stage: string;
  pools: PoolConfig[];
  gitlab: { url: string };
  github: { apiUrl: string };
  alarms: { email: string | undefined; thresholds: z.infer<typeof thresholds> };
  reconciliation: ReconciliationSettings;
  fleet: {
    rootVolumeGiB: number;
    rootVolumeGiBByPool: Record<string, number>;
    rootDeviceName: string;
    subnetIds: string[] | undefined;
    vpcId: string | undefined;
    binaryCacheBucket: string | undefined;
  };
}

/** Every mistake in the file at once, one line each, so that one edit can fix them all. */
export function parseHearthConfig(input: unknown, source = "hearth.config.json"): HearthConfig {
  const parsed = hearthConfigSchema.safeParse(input);
  if (!parsed.success) {
    const lines = describeConfigIssues(parsed.error);
    throw new ConfigError(
      lines.length === 1
        ? `${source}: ${lines[0]}`
        : `${source}:\n${lines.map((line) => `  ${line}`).join("\n")}`,
    );
  }
  return parsed.data;
}

/** Reads the config file; no file is the empty config. `$HEARTH_CONFIG` names another file. */
export function loadHearthConfig(
  path = process.env.HEARTH_CONFIG ?? "hearth.config.json",
  options: { required?: boolean } = {},
): HearthConfig {
  if (!existsSync(path)) {
    if (options.required || process.env.HEARTH_CONFIG) throw new ConfigError(`${path}: no such file`);
    return parseHearthConfig({}, path);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`${path}: not JSON (${error instanceof Error ? error.message : error})`);
  }
  return parseHearthConfig(json, path);
}

/** Stage names become part of AWS resource names, so they stay short and plain (as SST's do). */
export const stageNamePattern = /^[a-z][a-z0-9-]{0,23}$/;

/** The settings of one stage: the stage's own keys over the top-level ones, over the defaults. */
export function stageSettings(config: HearthConfig, stage: string): StageSettings {
  if (!stageNamePattern.test(stage)) {
    throw new ConfigError(
      `stage "${stage}": use lower-case letters, digits and "-", starting with a letter, at most 24`,
    );
  }
  const own = config.stages[stage] ?? {};
  const pick = <K extends keyof typeof settingsShape>(key: K) => own[key] ?? config[key];
  const pools = pick("pools") ?? defaultPools;
  const fleet = stageSchema.shape.fleet.unwrap().parse(pick("fleet") ?? {});
  const unknownPools = Object.keys(fleet.rootVolumeGiBByPool).filter(
    (name) => !pools.some((pool) => pool.name === name),
  );
  if (unknownPools.length) {
    throw new ConfigError(`stage "${stage}": fleet.rootVolumeGiBByPool names no pool ${unknownPools}`);
  }
  const alarms = pick("alarms");
  return {
    stage,
    pools,
    gitlab: { url: pick("gitlab")?.url ?? "https://gitlab.com" },
    github: { apiUrl: (pick("github")?.apiUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, "") },
    alarms: { email: alarms?.email, thresholds: alarms?.thresholds ?? thresholds.parse({}) },
    reconciliation: pick("reconciliation") ?? reconciliationSchema.parse({}),
    fleet: {
      rootVolumeGiB: fleet.rootVolumeGiB,
      rootVolumeGiBByPool: fleet.rootVolumeGiBByPool,
      rootDeviceName: fleet.rootDeviceName,
      subnetIds: fleet.subnetIds,
      vpcId: fleet.vpcId,
      binaryCacheBucket: fleet.binaryCacheBucket,
    },
  };
}
