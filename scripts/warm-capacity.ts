/**
 * npx tsx scripts/warm-capacity.ts [--traces DIR] [--coverage 0.95] [--past-hours 24] [--coming-hours 1]
 *   [--seasonal-days 7] [--seasonal-spread-minutes 60] [--seasonal-recent-hours 3] [TRACE.csv ...]
 *
 * What stopped capacity costs at a p95 wait of 35 s under five rules for how many instances a pool
 * keeps (core's `capacityFloor`, loose figures): a fixed number per pool; the peak of the past
 * `--past-hours`; the peak of the coming `--coming-hours`, which is foresight; a number for each hour
 * of the day chosen with the whole trace known, which is hindsight; and a forecast by time of day
 * learned from the past week (`--seasonal-*`). Beside them, what the cheapest baselines with the
 * binary cache cost in the simulator (seed 1), for every trace in DIR (default traces/) or those named.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { defaultPools, isRouted } from "../packages/core/src/pools";
import {
  capacityFloor,
  capacityRules,
  defaultFleetModel,
  defaultSeasonalWindow,
  parseTrace,
  poolsForModel,
  routeTraceJob,
  simulate,
} from "../packages/core/src/simulation/trace";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    traces: { type: "string", default: "traces" },
    coverage: { type: "string", default: "0.95" },
    "past-hours": { type: "string", default: "24" },
    "coming-hours": { type: "string", default: "1" },
    "seasonal-days": { type: "string", default: String(defaultSeasonalWindow.days) },
    "seasonal-spread-minutes": { type: "string", default: String(defaultSeasonalWindow.spreadMinutes) },
    "seasonal-recent-hours": { type: "string", default: String(defaultSeasonalWindow.recentHours) },
  },
});
const pastHours = Number(values["past-hours"]);
const comingHours = Number(values["coming-hours"]);
if (!(pastHours > 0 && comingHours > 0)) {
  process.stderr.write("--past-hours and --coming-hours must be positive numbers\n");
  process.exit(2);
}
const seasonal = {
  days: Number(values["seasonal-days"]),
  spreadMinutes: Number(values["seasonal-spread-minutes"]),
  recentHours: Number(values["seasonal-recent-hours"]),
};
if (
  !(
    Number.isInteger(seasonal.days) &&
    seasonal.days >= 0 &&
    seasonal.spreadMinutes >= 0 &&
    seasonal.spreadMinutes < 24 * 60 &&
    seasonal.recentHours >= 0
  )
) {
  process.stderr.write(
    "--seasonal-days must be a whole number, --seasonal-spread-minutes under a day (a wider window would see the present), and none of the three negative\n",
  );
  process.exit(2);
}
const coverage = Number(values.coverage);
if (!(coverage > 0 && coverage <= 1)) {
  process.stderr.write(`--coverage must be in (0, 1], got ${values.coverage}\n`);
  process.exit(2);
}

const model = defaultFleetModel;
const pools = poolsForModel(defaultPools, model);
const ruleNames = {
  constant: "constant",
  pastPeak: `past ${pastHours} h's peak`,
  comingPeak: `coming ${comingHours} h's peak`,
  hourOfDay: "by hour of the day, in hindsight",
  seasonal: `same time of the past ${seasonal.days} days (±${seasonal.spreadMinutes} min), or past ${seasonal.recentHours} h's peak`,
};
const usd = (value: number) => `$${value.toFixed(2)}`;

const files = positionals.length
  ? positionals
  : readdirSync(values.traces)
      .filter((name) => name.endsWith(".csv"))
      .sort()
      .map((name) => join(values.traces, name));
const lines = [
  "| trace | oracle | rule | instances kept | stopped | floor in all | × oracle | jobs with a slot | ghr+cache | terraform-nixos+cache |",
  "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const file of files) {
  const trace = parseTrace(readFileSync(file, "utf8"), basename(file, ".csv"));
  const floor = capacityFloor(
    trace,
    (job) => {
      const route = routeTraceJob(job, pools);
      return isRouted(route) ? route.pool : null;
    },
    model,
    coverage,
    { pastHours, comingHours, seasonal },
  );
  const baselines = (["ghr+cache", "terraform-nixos+cache"] as const).map((policy) =>
    usd(simulate(trace, { policy, seed: 1 }).costUsd),
  );
  for (const rule of capacityRules) {
    const figures = floor.rules[rule];
    const kept =
      rule === "constant"
        ? Object.entries(floor.constantInstances)
            .map(([pool, count]) => `${pool} ${count}`)
            .join(", ")
        : "varies";
    const total = floor.oracleUsd + figures.stoppedUsd;
    lines.push(
      `| ${trace.name} | ${usd(floor.oracleUsd)} | ${ruleNames[rule]} | ${kept} | ${usd(figures.stoppedUsd)} | ${usd(total)} | ${(total / floor.oracleUsd).toFixed(1)} | ${((100 * figures.coveredJobs) / floor.jobs).toFixed(1)}% | ${baselines.join(" | ")} |`,
    );
  }
}
process.stdout.write(`${lines.join("\n")}\n`);
