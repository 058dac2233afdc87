/**
 * npx tsx scripts/sim-report.ts [--traces DIR] [--out docs] [--seed N] [--max-instances N] [--interruptions]
 *   [--lost-seeds K] [--no-retry-hold] [--warm-market on-demand|spot] [--frontier]
 *
 * Runs every policy (the baselines with and without the binary cache) on every trace in DIR (default
 * traces/), writes one SVG per trace to `docs/sim-<trace>.svg` (`sim-<trace>-max<N>.svg` with
 * `--max-instances N` other than the model's 50; cost against p95 wait, one point per policy, the
 * goal shaded) and prints the Markdown tables for docs/BENCHMARKS.md, with where each job's store came
 * from. Hearth is run with the other `warm.market` as well (a second row, a hollow Hearth point). No
 * dependencies: the SVG is written by hand.
 * With `--interruptions` it prints instead, per trace, what spot interruptions cost at the model's
 * rate and at 5 times it (Hearth under GitHub's and GitLab's rules, and the baselines that run spot),
 * and, with `--lost-seeds K`, Hearth's lost jobs over seeds 1 to K, then what the retry hold costs
 * (Hearth with and without it). `--no-retry-hold` runs Hearth without the retry hold throughout;
 * `--warm-market` sets its pools' `warm.market` (default: the pool setting's default).
 * With `--frontier` it prints instead, per trace, Hearth under each cap on its stopped stores (the
 * pool setting `warm.warmPoolSize`, `FRONTIER_CAPS`): what each cap buys in wait, cost and warm hits,
 * and which baselines (with and without the cache) Hearth then does not dominate.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_WARM_MARKET, defaultPools, type WarmMarket, warmMarkets } from "../packages/core/src/pools";
import {
  defaultFleetModel,
  dominanceMisses,
  type FleetModel,
  type ForgeChoice,
  parseTrace,
  policyNames,
  type SimResult,
  type StoreFigures,
  simulate,
  type Trace,
  WAIT_FLOOR_SECONDS,
  withPoolSettings,
} from "../packages/core/src/simulation/trace";

const { values } = parseArgs({
  options: {
    traces: { type: "string", default: "traces" },
    out: { type: "string", default: "docs" },
    seed: { type: "string", default: "1" },
    interruptions: { type: "boolean", default: false },
    frontier: { type: "boolean", default: false },
    "lost-seeds": { type: "string", default: "0" },
    "no-retry-hold": { type: "boolean", default: false },
    "warm-market": { type: "string", default: DEFAULT_WARM_MARKET },
    "max-instances": { type: "string" },
  },
});

/** The fleet model: the README's, with `--max-instances` if given. */
const maxInstances =
  values["max-instances"] === undefined
    ? defaultFleetModel.maxInstancesPerPool
    : Number(values["max-instances"]);
if (!Number.isInteger(maxInstances) || maxInstances < 1) {
  process.stderr.write(`--max-instances must be a positive integer, got ${values["max-instances"]}\n`);
  process.exit(2);
}
const model: Partial<FleetModel> = { maxInstancesPerPool: maxInstances };

const warmMarket = values["warm-market"] as WarmMarket;
if (!warmMarkets.includes(warmMarket)) {
  process.stderr.write(`--warm-market must be ${warmMarkets.join(" or ")}, got ${warmMarket}\n`);
  process.exit(2);
}

/** Hearth holds a pool's spot runners for a retry unless `--no-retry-hold`. */
const retryHold = !values["no-retry-hold"];

/** Hearth's runs, kept: the tables share some (seed 1 at each rate and forge, with the hold). */
const hearthRuns = new Map<string, ReturnType<typeof simulate>>();
function hearthRun(trace: Trace, seed: number, multiplier: number, forge: ForgeChoice, hold = retryHold) {
  const key = `${trace.name} ${seed} ${multiplier} ${forge} ${hold}`;
  let result = hearthRuns.get(key);
  if (result === undefined) {
    result = simulate(trace, {
      policy: "hearth",
      seed,
      interruptionRateMultiplier: multiplier,
      hearth: { forge, retryHold: hold, warmMarket },
      model,
    });
    hearthRuns.set(key, result);
  }
  return result;
}

const esc = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Log-scale axis over [lo, hi], both powers of ten. */
function axis(values: number[], floor: number) {
  const positive = values.map((v) => Math.max(v, floor));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive) * 1.01));
  return {
    lo,
    hi,
    at: (v: number) => (Math.log10(Math.max(v, floor)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)),
  };
}

const colors: Record<string, string> = {
  hearth: "#d9480f",
  oracle: "#2b8a3e",
  static: "#5c7cfa",
  "terraform-nixos": "#7048e8",
  autogit: "#1098ad",
  ephemeral: "#868e96",
  ghr: "#c2255c",
};
/** A baseline's `+cache` variant: its base's colour, as a hollow point. */
const colorOf = (policy: string) => colors[policy.replace(/\+cache$/, "")] ?? "#000";

/**
 * A row of the report: a policy's result, and for a Hearth run with other settings its name in the
 * table and its shorter one on the plot.
 */
type Row = SimResult & { stores: StoreFigures; label?: string; mark?: string };
/** The label of Hearth's run with the other warm market, beside the one the report is for. */
const otherMarketLabel = (market: WarmMarket) => `hearth, warm.market ${market}`;

/** A power of ten, as an SVG text fragment: 1, 10, 100, 1000, then 10⁴… */
const power = (v: number): string => {
  const exponent = Math.round(Math.log10(v));
  return exponent <= 3 ? String(10 ** exponent) : `10<tspan dy="-5" font-size="9">${exponent}</tspan>`;
};

function plot(trace: string, results: Row[]): string {
  const width = 680;
  const height = 440;
  const margin = { left: 70, right: 130, top: 40, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  // A p95 of 0 s sits on the 1 s line: the axis is logarithmic.
  const x = axis(
    results.map((r) => r.waitP95),
    1,
  );
  const y = axis(
    results.map((r) => r.costUsd),
    0.01,
  );
  const px = (v: number) => margin.left + x.at(v) * plotW;
  const py = (v: number) => margin.top + plotH - y.at(v) * plotH;
  const oracle = results.find((r) => r.policy === "oracle");
  const parts: string[] = [];
  let goalCaption: { x: number; y: number; w: number } | undefined;
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${margin.left}" y="22" font-size="14" font-weight="600">${esc(trace)}: cost against p95 wait</text>`,
  );
  if (oracle) {
    // The goal: p95 within the 35 s warm-resume floor (what dominating `static` asks) and cost
    // within three times the oracle's.
    const right = px(Math.min(WAIT_FLOOR_SECONDS, x.hi));
    const top = py(Math.min(3 * oracle.costUsd, y.hi));
    parts.push(
      `<rect x="${margin.left}" y="${top}" width="${right - margin.left}" height="${margin.top + plotH - top}" fill="#40c05722"/>`,
      `<text x="${margin.left + 4}" y="${top + 14}" fill="#2b8a3e">goal: p95 ≤ ${WAIT_FLOOR_SECONDS} s, cost ≤ 3× oracle</text>`,
    );
    goalCaption = { x: margin.left + 4, y: top + 14, w: 6.5 * 34 };
  }
  for (let v = x.lo; v <= x.hi * 1.001; v *= 10) {
    const at = px(v);
    parts.push(
      `<line x1="${at}" y1="${margin.top}" x2="${at}" y2="${margin.top + plotH}" stroke="#e9ecef"/>`,
      `<text x="${at}" y="${margin.top + plotH + 18}" text-anchor="middle" fill="#495057">${v === x.lo && v <= 1 ? "≤1" : power(v)}</text>`,
    );
  }
  for (let v = y.lo; v <= y.hi * 1.001; v *= 10) {
    const at = py(v);
    parts.push(
      `<line x1="${margin.left}" y1="${at}" x2="${margin.left + plotW}" y2="${at}" stroke="#e9ecef"/>`,
      `<text x="${margin.left - 6}" y="${at + 4}" text-anchor="end" fill="#495057">$${v >= 1 ? v.toFixed(0) : v.toFixed(2)}</text>`,
    );
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#adb5bd"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">p95 wait, seconds (log scale)</text>`,
    `<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">cost, USD (log scale)</text>`,
  );
  // Labels right of their points, nudged down until they overlap no label placed before.
  // The goal's caption counts as placed: no label covers it.
  const placed: { x: number; y: number; w: number }[] = goalCaption ? [goalCaption] : [];
  // Hearth's run with the other warm market last: its label moves no baseline's.
  const ordered = [...results.filter((r) => r.label === undefined), ...results.filter((r) => r.label)];
  for (const result of ordered) {
    const cx = px(result.waitP95);
    const cy = py(result.costUsd);
    const color = colorOf(result.policy);
    // Hearth with the other warm market: a hollow Hearth point.
    const hollow = result.policy.endsWith("+cache") || result.label !== undefined;
    const r = result.policy === "hearth" ? 7 : 5;
    const name = result.mark ?? result.label ?? result.policy;
    const w = 7 * name.length;
    const free = (at: { x: number; y: number }) =>
      !placed.some((p) => Math.abs(p.y - at.y) < 13 && at.x < p.x + p.w && p.x < at.x + w);
    // Right of the point, else left of it, else right and nudged down until free.
    const right = { x: cx + 9, y: cy + 4, w };
    const left = { x: cx - 9 - w, y: cy + 4, w };
    const label = free(right) || !free(left) || left.x < 0 ? right : left;
    while (!free(label)) label.y += 13;
    placed.push(label);
    parts.push(
      hollow
        ? `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="${r - 1}" fill="#fff" stroke="${color}" stroke-width="2"/>`
        : `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="${r}" fill="${color}" stroke="#fff"/>`,
      `<text x="${label.x.toFixed(1)}" y="${label.y.toFixed(1)}" fill="${color}"${result.policy === "hearth" ? ' font-weight="700"' : ""}>${esc(name)}</text>`,
    );
  }
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/** A share as a percentage, "-" when there is nothing to share. */
const percent = (n: number, of: number) => (of === 0 ? "-" : `${((100 * n) / of).toFixed(1)}%`);

function table(results: Row[]): string {
  const oracle = results.find((r) => r.policy === "oracle")?.costUsd ?? Number.NaN;
  const lines = [
    "| policy | p50 wait | p95 wait | max wait | cost | × oracle | instance-hours | warm hits | substituted | warm of achievable | interrupted | lost |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    const name = r.label !== undefined ? `**${r.label}**` : r.policy === "hearth" ? "**hearth**" : r.policy;
    const s = r.stores;
    // The oracle runs every job warm by definition: no store history to speak of.
    const stores =
      r.policy === "oracle"
        ? "- | -"
        : `${percent(s.substituted, s.warm + s.substituted + s.cold)} | ${percent(s.warmOfAchievable, s.achievable)}`;
    lines.push(
      `| ${name} | ${r.waitP50.toFixed(0)} s | ${r.waitP95.toFixed(0)} s | ${r.waitMax.toFixed(0)} s | $${r.costUsd.toFixed(2)} | ${(r.costUsd / oracle).toFixed(1)} | ${r.instanceHours.toFixed(0)} | ${(100 * r.warmHitRate).toFixed(1)}% | ${stores} | ${r.interruptedJobs} | ${r.lostJobs} |`,
    );
  }
  return lines.join("\n");
}

/** The interruption rates reported: the model's, and 5 times it. */
const multipliers = [1, 5];
/** Who runs spot: Hearth under each forge's rules, and the baselines with spot instances. */
const spotRuns: Array<{ label: string; policy: "hearth" | "terraform-nixos" | "ghr"; forge?: ForgeChoice }> =
  [
    { label: "**hearth**, GitHub rules", policy: "hearth", forge: "github" },
    { label: "**hearth**, GitLab rules", policy: "hearth", forge: "gitlab" },
    { label: "terraform-nixos", policy: "terraform-nixos" },
    { label: "ghr", policy: "ghr" },
  ];

/** A wait as people read it: seconds under two minutes, minutes above. */
const minutes = (seconds: number) =>
  seconds < 120 ? `${seconds.toFixed(0)} s` : `${(seconds / 60).toFixed(seconds < 600 ? 1 : 0)} min`;

function interruptionTable(trace: Trace, seed: number): string {
  const lines = [
    "| rate | policy | interrupted jobs | retries | restarts on spot | extra wait p50 | p95 | max | extra wait, all jobs | work redone | lost |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const multiplier of multipliers) {
    for (const run of spotRuns) {
      const { details, lostJobs } =
        run.policy === "hearth"
          ? hearthRun(trace, seed, multiplier, run.forge ?? "auto")
          : simulate(trace, { policy: run.policy, seed, interruptionRateMultiplier: multiplier, model });
      const f = details.interruptions;
      lines.push(
        `| ${multiplier}× (${f.ratePerHour}/h) | ${run.label} | ${f.interruptedJobs} | ${f.retries} | ${f.restartsOnSpot} | ${minutes(f.extraWaitP50)} | ${minutes(f.extraWaitP95)} | ${minutes(f.extraWaitMax)} | ${(f.extraWaitTotal / 3600).toFixed(1)} h | ${(f.redoneSeconds / 3600).toFixed(1)} h | ${lostJobs} |`,
      );
    }
  }
  return lines.join("\n");
}

/** Hearth's lost jobs (and interrupted jobs) per seed, under each forge's rules, at each rate. */
function lostAcrossSeeds(trace: Trace, seeds: number): string {
  const lines = [
    `| rate | rules | lost jobs, seeds 1–${seeds} | interrupted jobs, seeds 1–${seeds} |`,
    "| --- | --- | --- | --- |",
  ];
  for (const multiplier of multipliers) {
    for (const forge of ["github", "gitlab"] as const) {
      const runs = Array.from({ length: seeds }, (_, i) => hearthRun(trace, i + 1, multiplier, forge));
      lines.push(
        `| ${multiplier}× | ${forge === "github" ? "GitHub" : "GitLab"} | ${runs.map((r) => r.lostJobs).join(", ")} | ${runs.map((r) => r.interruptedJobs).join(", ")} |`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * What the retry hold costs the other jobs: Hearth's rows (waits from arrival to first start, cost)
 * with and without it, at each rate, under each forge's rules.
 */
function holdCostTable(trace: Trace, seed: number): string {
  const lines = [
    "| rate | rules | retry hold | p50 wait | p95 wait | max wait | cost | warm hits | restarts on spot | lost |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const multiplier of multipliers) {
    for (const forge of ["github", "gitlab"] as const) {
      for (const hold of [false, true]) {
        const r = hearthRun(trace, seed, multiplier, forge, hold);
        lines.push(
          `| ${multiplier}× | ${forge === "github" ? "GitHub" : "GitLab"} | ${hold ? "**on**" : "off"} | ${r.waitP50.toFixed(0)} s | ${r.waitP95.toFixed(0)} s | ${r.waitMax.toFixed(0)} s | $${r.costUsd.toFixed(2)} | ${(100 * r.warmHitRate).toFixed(1)}% | ${r.details.interruptions.restartsOnSpot} | ${r.lostJobs} |`,
        );
      }
    }
  }
  return lines.join("\n");
}

/** The caps on a pool's stopped stores the frontier tries; the last is the pool setting's default. */
const FRONTIER_CAPS = [0, 2, 4, 8, 12, 16, 24, defaultPools[0]?.warm.warmPoolSize ?? 50];

/**
 * Hearth under each cap on its stopped stores, against every baseline: whom it does not dominate
 * (p95 above max(theirs, 35 s), or cost above theirs), beside its cost against the oracle's, its warm
 * hits and its lost jobs.
 */
function frontierTable(trace: Trace, seed: number): string {
  const baselines = policyNames
    .filter((policy) => policy !== "hearth" && policy !== "oracle")
    .map((policy) => simulate(trace, { policy, seed, model }));
  const oracle = simulate(trace, { policy: "oracle", seed, model }).costUsd;
  const lines = [
    "| `warm.warmPoolSize` | p95 wait | cost | × oracle | warm of achievable | lost | baselines not dominated |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const cap of FRONTIER_CAPS) {
    const pools = withPoolSettings(defaultPools, { warm: { warmPoolSize: cap } });
    const r = simulate(trace, {
      policy: "hearth",
      seed,
      pools,
      hearth: { retryHold, warmMarket },
      model,
    });
    const missed = dominanceMisses(r, baselines);
    const s = r.details.stores;
    const name = cap === FRONTIER_CAPS[FRONTIER_CAPS.length - 1] ? `**${cap}** (default)` : String(cap);
    lines.push(
      `| ${name} | ${r.waitP95.toFixed(0)} s | $${r.costUsd.toFixed(2)} | ${(r.costUsd / oracle).toFixed(1)} | ${percent(s.warmOfAchievable, s.achievable)} | ${r.lostJobs} | ${missed.length ? missed.join("; ") : "none"} |`,
    );
  }
  return lines.join("\n");
}

const dir = values.traces as string;
const files = readdirSync(dir)
  .filter((file) => file.endsWith(".csv"))
  .sort();
for (const file of files) {
  const trace = parseTrace(readFileSync(join(dir, file), "utf8"), file);
  if (values.frontier) {
    process.stdout.write(
      `#### ${basename(file, ".csv")} (${trace.jobs.length} jobs, at most ${maxInstances} instances per pool)\n\n${frontierTable(trace, Number(values.seed))}\n\n`,
    );
    continue;
  }
  if (values.interruptions) {
    const name = basename(file, ".csv");
    const seeds = Number(values["lost-seeds"]);
    process.stdout.write(
      `#### ${name} (${trace.jobs.length} jobs)\n\n${interruptionTable(trace, Number(values.seed))}\n\n`,
    );
    if (seeds > 0) process.stdout.write(`${lostAcrossSeeds(trace, seeds)}\n\n`);
    if (retryHold) process.stdout.write(`${holdCostTable(trace, Number(values.seed))}\n\n`);
    hearthRuns.clear();
    continue;
  }
  const run = (policy: (typeof policyNames)[number], market = warmMarket): Row => {
    const { details, ...result } = simulate(trace, {
      policy,
      seed: Number(values.seed),
      hearth: { retryHold, warmMarket: market },
      model,
    });
    return { ...result, stores: details.stores };
  };
  const results: Row[] = policyNames.map((policy) => run(policy));
  // Hearth's other warm market too, after Hearth's row: the opt-in setting, on the same plot.
  const other = warmMarkets.find((market) => market !== warmMarket) as WarmMarket;
  results.splice(1, 0, {
    ...run("hearth", other),
    label: otherMarketLabel(other),
    mark: `hearth (${other})`,
  });
  const name = basename(file, ".csv");
  const suffix = maxInstances === defaultFleetModel.maxInstancesPerPool ? "" : `-max${maxInstances}`;
  const svg = join(values.out as string, `sim-${name}${suffix}.svg`);
  writeFileSync(svg, plot(`${name}${suffix ? `, at most ${maxInstances} instances` : ""}`, results));
  process.stdout.write(
    `#### ${name} (${trace.jobs.length} jobs, at most ${maxInstances} instances per pool)\n\n${table(results)}\n\n![${name}](sim-${name}${suffix}.svg)\n\n`,
  );
}
