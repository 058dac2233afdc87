/**
 * `npm run bench:polling`: the chaos scenario (local mode, the simulated forges dropping 30% of their
 * webhooks, a demo trace on GitHub and GitLab; see packages/functions/test/support/chaos.ts), over a
 * few seeds. For each job whose `queued` webhook was dropped: fleet time from its arrival in the
 * forge to its first scale request. Prints p50 and p95 per forge against the target, one poll
 * interval plus one ScaleFleet run.
 *
 * BENCH_SEEDS (3), BENCH_JOBS (60), BENCH_SPEED (20), BENCH_LOSS (0.3) change the scenario.
 */
import { missedLatencies, quantile, runChaos } from "../test/support/chaos";

const seeds = Number(process.env.BENCH_SEEDS ?? 3);
const jobs = Number(process.env.BENCH_JOBS ?? 60);
const speed = Number(process.env.BENCH_SPEED ?? 20);
const loss = Number(process.env.BENCH_LOSS ?? 0.3);
const pollSeconds = 60;

const latencies = { github: [] as number[], gitlab: [] as number[] };
let unfinished = 0;
let unrecorded = 0;
let total = 0;
for (let seed = 1; seed <= seeds; seed++) {
  const started = Date.now();
  const result = await runChaos({ loss, seed, jobs, speed, pollSeconds });
  total += result.jobs.length;
  unfinished += result.unfinished.length;
  unrecorded += result.unrecorded.length;
  for (const source of ["github", "gitlab"] as const)
    latencies[source].push(...missedLatencies(result, source));
  console.log(
    `seed ${seed}: ${result.jobs.length} jobs, ${result.missed.length} missed (queued webhook dropped), ` +
      `${result.deliveries.dropped} of ${result.deliveries.sent} deliveries dropped, ${result.polls} polls, ` +
      `${result.seconds} s of fleet time (${((Date.now() - started) / 1000).toFixed(0)} s real)`,
  );
}

const format = (seconds: number) => (Number.isFinite(seconds) ? `${seconds.toFixed(0)} s` : "never");
console.log(
  `\nmissed job: arrival → first scale request (fleet time; poll every ${pollSeconds} s, 5 s steps)`,
);
console.log("forge   missed  p50     p95     max");
for (const source of ["github", "gitlab"] as const) {
  const sorted = latencies[source].sort((a, b) => a - b);
  console.log(
    `${source.padEnd(7)} ${String(sorted.length).padEnd(7)} ${format(quantile(sorted, 0.5)).padEnd(7)} ` +
      `${format(quantile(sorted, 0.95)).padEnd(7)} ${format(sorted.at(-1) ?? Number.NaN)}`,
  );
}
console.log(`\n${total} jobs: ${unfinished} unfinished in their forge, ${unrecorded} never in the ledger.`);
