/**
 * `npm run bench:scale`: in local mode, the time from a queued webhook being accepted to the fleet
 * call it causes, with ScaleFleet's Wait state overridden to zero. Each trial starts from an idle
 * pool, so each webhook must start a ScaleFleet run that resumes a warm instance.
 */
import { cpus } from "node:os";
import { FakeClock } from "@hearth/core/clock";
import type { FleetPort } from "@hearth/core/fleet";
import { defaultPools } from "@hearth/core/pools";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { startLocal } from "../src/local/server";
import { silentLogger } from "../src/log";

const TRIALS = Number(process.env.BENCH_TRIALS ?? 60);
const secrets = { githubWebhookSecret: "bench-gh", gitlabWebhookToken: "bench-gl" };
const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

async function trial(n: number): Promise<{ fromSent: number; fromAnswer: number }> {
  const clock = new FakeClock();
  const sim = new SimulatedFleet({ pools: defaultPools, clock, initialWarmPool: 2 });
  let called = 0;
  // The fleet port, timed: the first call that changes capacity is the moment being measured.
  const fleet: FleetPort = {
    observe: (pool) => sim.observe(pool),
    lookup: (id) => sim.lookup(id),
    release: (pool, ids, stillIdle) => sim.release(pool, ids, stillIdle),
    handRunnerConfig: (handOver) => sim.handRunnerConfig(handOver),
    withdrawRunnerConfig: (parameter) => sim.withdrawRunnerConfig(parameter),
    detach: (pool, id) => sim.detach(pool, id),
    terminate: (id) => sim.terminate(id),
    exists: (id) => sim.exists(id),
    async setCapacity(pool, target) {
      const calls = await sim.setCapacity(pool, target);
      if (calls.length && !called) called = performance.now();
      return calls;
    },
  };
  const hearth = await startLocal({
    port: 0,
    settings: {
      GITHUB_WEBHOOK_SECRET: secrets.githubWebhookSecret,
      GITLAB_WEBHOOK_TOKEN: secrets.gitlabWebhookToken,
    } as never,
    log: silentLogger,
    clock,
    fleet,
    tickSeconds: 0,
    maxIterations: 5,
    waitMs: 0,
  });
  try {
    const job = {
      source: "github" as const,
      id: String(1000 + n),
      project: "acme/app",
      projectId: "1",
      pipelineId: "1",
      name: "build",
      labels: ["nix", "x86_64-linux"],
    };
    const request = githubDelivery(
      workflowJobPayload(job, "queued", { createdAt: new Date(clock.now()).toISOString() }),
      secrets,
    );
    const sent = performance.now();
    const response = await fetch(`${hearth.url}${request.path}`, {
      method: "POST",
      headers: request.headers,
      body: request.body,
    });
    const answered = performance.now();
    if (response.status !== 202) throw new Error(`webhook answered ${response.status}`);
    await hearth.idle();
    if (!called) throw new Error("no fleet call happened");
    return { fromSent: called - sent, fromAnswer: called - answered };
  } finally {
    await hearth.close();
  }
}

async function main() {
  await trial(-1); // warm up module loading and the JIT
  const fromSent: number[] = [];
  const fromAnswer: number[] = [];
  for (let n = 0; n < TRIALS; n++) {
    const result = await trial(n);
    fromSent.push(result.fromSent);
    fromAnswer.push(result.fromAnswer);
  }
  fromSent.sort((a, b) => a - b);
  fromAnswer.sort((a, b) => a - b);
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}; ${TRIALS} trials`,
  );
  console.log("| from | p50 | p99 | max | target |\n|---|---|---|---|---|");
  console.log(
    `| webhook sent → fleet call | ${ms(quantile(fromSent, 0.5))} | ${ms(quantile(fromSent, 0.99))} | ${ms(fromSent.at(-1) ?? 0)} | < 1 s |`,
  );
  console.log(
    `| webhook answered → fleet call | ${ms(quantile(fromAnswer, 0.5))} | ${ms(quantile(fromAnswer, 0.99))} | ${ms(fromAnswer.at(-1) ?? 0)} | |`,
  );
}

await main();
