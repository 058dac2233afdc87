import { randomUUID } from "node:crypto";
import { FakeClock } from "@hearth/core/clock";
import { cacheKeyOf } from "@hearth/core/jobs";
import { createLedger } from "@hearth/core/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import { ensureTable } from "@hearth/core/table";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimulatedRunners } from "../src/local/sim-runners";
import { silentLogger } from "../src/log";

/**
 * Local mode's runners claim jobs by the fleet model's rule (`claimQueuedJobs`): the forge hands a
 * queued job to a listening slot of its pool picked at random, whatever the slot's store holds.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(async () => {
  await dynamo.close();
});

const pool = defaultPools.find((candidate) => candidate.labels.includes("x86_64-linux"));

/** Two listening instances, one warm for the job; returns whether the warm one got it. */
async function claimWithSeed(seed: number): Promise<boolean> {
  if (!pool) throw new Error("no x86_64-linux pool");
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `runners-${randomUUID()}`;
  await ensureTable(client, tableName);
  const clock = new FakeClock();
  const ledger = createLedger({ client: documents, tableName, now: () => new Date(clock.now()) });
  const fleet = new SimulatedFleet({ pools: [pool], clock });
  // A GitLab job: its runner manager registers as the instance starts, with no control plane needed.
  const forge = new SimulatedForgeRunners({ now: () => clock.now() });
  forge.gitlab.poolRunner(pool.name, { tagList: pool.labels, runUntagged: pool.untagged });
  const busy = new Set<string>();
  const runners = new SimulatedRunners({
    fleet,
    ledger,
    pools: [pool],
    clock,
    secrets: { githubWebhookSecret: "secret", gitlabWebhookToken: "token" },
    log: silentLogger,
    seed,
    forge,
    readRunnerConfig: () => undefined,
    // Hearth's app is not running here: the heartbeats tell which instance took the job.
    async send(path, init) {
      if (path === "/agent/heartbeat") {
        const beat = JSON.parse(init.body) as { instanceId: string; runningJobs: unknown[] };
        if (beat.runningJobs.length) busy.add(beat.instanceId);
      }
      return { status: 202, body: "{}" };
    },
  });
  runners.start();
  await fleet.setCapacity(pool, { warm: 2, burst: 0, warmPoolSize: 0 });
  await clock.advance(pool.boot.coldSeconds * 1000 + 1000);
  const [warm, cold] = fleet.all().map((instance) => instance.id);
  if (!warm || !cold) throw new Error("two instances should be in service");
  const job = {
    source: "gitlab" as const,
    id: "7",
    project: "acme/app",
    projectId: null,
    pipelineId: "1",
    name: "ci / build",
    attempt: 1,
    labels: pool.labels,
    labelsKnown: true,
    status: "queued" as const,
    conclusion: null,
    failureReason: null,
    queuedAt: new Date(clock.now()).toISOString(),
    startedAt: null,
    finishedAt: null,
    runner: null,
    instanceId: null,
    url: null,
  };
  await ledger.record(job);
  runners.restore({
    stores: { [warm]: [cacheKeyOf({ project: job.project, name: job.name })] },
    jobs: [],
    slots: {},
  });
  await runners.dispatch();
  runners.stop();
  expect([...busy]).toHaveLength(1);
  return busy.has(warm);
}

describe("local mode's runners", () => {
  it("take the job on a slot the forge picks at random: a warm store is not preferred", async () => {
    const outcomes: boolean[] = [];
    for (let seed = 1; seed <= 10; seed++) outcomes.push(await claimWithSeed(seed));
    // Each instance gets it for some seeds (0.5^10 per side that it would not, for a fair draw).
    expect(outcomes).toContain(true);
    expect(outcomes).toContain(false);
  });
});
