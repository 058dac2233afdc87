/**
 * npm run bench:sim [-- --jobs N --days D --policy NAME|all --trace FILE]
 *
 * Times the simulator: a real trace (default: the bitcoin-core trace in traces/) and a
 * synthetic trace of N jobs (default 1,000,000 over a year), generated in memory. Prints wall-clock
 * and CPU seconds per step; a benchmark, not a test.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import {
  isPolicyName,
  type PolicyName,
  parseTrace,
  policyNames,
  simulate,
} from "../packages/core/src/simulation/trace";
import { syntheticTraceCsv } from "../packages/core/src/simulation/trace/synthetic";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "1000000" },
    days: { type: "string", default: "365" },
    seed: { type: "string", default: "1" },
    policy: { type: "string", default: "hearth" },
    trace: { type: "string", default: "traces/bitcoin-core-gha-2025-09.csv" },
  },
});
const policies: PolicyName[] =
  values.policy === "all" ? [...policyNames] : (values.policy as string).split(",").filter(isPolicyName);
if (policies.length === 0) throw new Error(`unknown policy ${values.policy}`);

// Wall-clock and CPU time (user + system): on a shared machine the CPU time is the steadier figure.
const time = <T>(label: string, run: () => T): T => {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = run();
  const used = process.cpuUsage(cpu);
  const wall = ((performance.now() - started) / 1000).toFixed(2).padStart(7);
  const busy = ((used.user + used.system) / 1e6).toFixed(2).padStart(7);
  process.stdout.write(`${label.padEnd(58)} ${wall} s wall ${busy} s cpu\n`);
  return result;
};

process.stdout.write(`node ${process.version}, ${process.platform}/${process.arch}\n`);
const traces = [];
if (existsSync(values.trace as string)) {
  const file = values.trace as string;
  traces.push(time(`parse ${basename(file)}`, () => parseTrace(readFileSync(file, "utf8"), basename(file))));
}
const jobs = Number(values.jobs);
const csv = time(`generate ${jobs} synthetic jobs over ${values.days} days`, () =>
  syntheticTraceCsv({ jobs, days: Number(values.days), seed: Number(values.seed) }),
);
traces.push(
  time(`parse synthetic (${(csv.length / 1e6).toFixed(0)} MB)`, () => parseTrace(csv, `synthetic-${jobs}`)),
);
for (const trace of traces) {
  for (const policy of policies) {
    const result = time(`simulate ${trace.name} (${trace.jobs.length} jobs) ${policy}`, () =>
      simulate(trace, { policy, seed: Number(values.seed) }),
    );
    process.stdout.write(
      `  p95 ${result.waitP95.toFixed(0)} s, $${result.costUsd.toFixed(0)}, warm ${(100 * result.warmHitRate).toFixed(1)}%, lost ${result.lostJobs}\n`,
    );
  }
}
