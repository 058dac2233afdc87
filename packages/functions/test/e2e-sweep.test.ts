import { BOOT_GRACE_MS } from "@hearth/core/fleet";
import type { JournalEntry } from "@hearth/core/journal";
import type { PoolConfig } from "@hearth/core/pools";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import type { SweepActOutcome, SweepSurvey } from "@hearth/core/sweep";
import { describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import {
  closeAfterEach,
  describeJobs,
  type LocalSetup,
  localPool,
  pass,
  secrets,
  send,
  startTestHearth,
} from "./support/local";

/**
 * The sweep end to end in local mode: the Sweep state machine run by aws-local-stepfunctions (`POST
 * /sim/sweep`), over the simulated fleet, its instances' own agents, and the simulated GitHub's runner
 * API, with faults injected through local mode's routes as a user would.
 */

const pool: PoolConfig = localPool({
  slotsPerInstance: 2,
  maxInstances: 4,
  boot: { coldSeconds: 10, warmSeconds: 5 },
  idleTimeouts: { warmSeconds: 3600, burstSeconds: 3600 },
});

/** The simulated GitHub's scope of a pool that names none (local-runners.ts). */
const scope = { organization: "local" };

const closing = closeAfterEach();

type Setup = LocalSetup;

async function start(options: { dryRun?: boolean; pools?: PoolConfig[] } = {}): Promise<Setup> {
  const started = await startTestHearth({
    pools: options.pools ?? [pool],
    initialWarmPool: 0,
    sweepSeconds: 0,
    reconciliation: { pollMinutes: 1, sweepMinutes: 5, budgetShare: 0.1, dryRun: options.dryRun ?? false },
  });
  closing(started.hearth);
  const fleet = started.hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { h: started.hearth, clock: started.clock, fleet };
}

interface SweepAnswer {
  survey: SweepSurvey;
  outcomes?: SweepActOutcome[];
}

async function sweep({ h }: Setup): Promise<SweepAnswer> {
  const response = await fetch(`${h.url}/sim/sweep`, { method: "POST" });
  expect(response.status, await response.clone().text()).toBe(200);
  const answer = (await response.json()) as SweepAnswer;
  await h.idle();
  return answer;
}

async function call(h: LocalHearth, method: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${h.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const ghostName = "hearth-i-0deadbeef00000001-1";

async function createGhost(h: LocalHearth, name = ghostName): Promise<number> {
  const response = await call(h, "POST", "/sim/forge/runners", { forge: "github", scope, name });
  expect(response.status).toBe(201);
  return ((await response.json()) as { runner: { id: number } }).runner.id;
}

const runnerExists = (s: Setup, id: number) =>
  s.h.simulation?.forge.github.all(scope).some((runner) => runner.id === id) ?? false;

const sweepEntries = async (h: LocalHearth): Promise<JournalEntry[]> =>
  (await h.journal.latest(500)).filter((entry) => entry.kind === "sweep");

let nextId = 77_000;
function githubJob(): ForgeJob {
  nextId += 1;
  return {
    source: "github",
    id: String(nextId),
    project: "acme/app",
    projectId: "7",
    pipelineId: String(nextId + 500_000),
    name: `build-${nextId}`,
    labels: ["nix", "x86_64-linux"],
  };
}

/** Queues a job by its webhook and lets the fleet boot an instance and run it; the instance it runs on. */
async function runJob(
  s: Setup,
  seconds: number,
  job: ForgeJob = githubJob(),
): Promise<{ job: ForgeJob; instanceId: string }> {
  await describeJobs(s.h, [job], seconds);
  const createdAt = new Date(s.clock.now()).toISOString();
  const request =
    job.source === "github"
      ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
      : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date(s.clock.now()));
  expect((await send(s.h, request)).status).toBeLessThan(300);
  await s.h.idle();
  for (let t = 0; t <= 180; t += 5) {
    const record = await s.h.ledger.get({ source: job.source, id: job.id });
    if (record?.status === "running" && record.instanceId) return { job, instanceId: record.instanceId };
    await pass(s.h, s.clock, 5);
  }
  throw new Error(`job ${job.id} did not start`);
}

const terminations = (fleet: SimulatedFleet, instanceId: string) =>
  fleet.callLog.filter((line) => line.startsWith("TerminateInstances") && line.includes(instanceId));

describe("the sweep, end to end", () => {
  it("deletes a ghost runner within two sweeps, and leaves a runner that is not Hearth's", async () => {
    const s = await start();
    const ghost = await createGhost(s.h);
    const other = await createGhost(s.h, "build-box-1");

    const first = await sweep(s);
    expect(first.survey.complete).toBe(true);
    expect(first.survey.marked["ghost-runner"]).toBe(1);
    expect(first.outcomes ?? []).toEqual([]);
    expect(runnerExists(s, ghost)).toBe(true);

    const second = await sweep(s);
    expect(second.outcomes?.map((outcome) => [outcome.kind, outcome.action.class])).toEqual([
      ["done", "ghost-runner"],
    ]);
    expect(runnerExists(s, ghost)).toBe(false);
    expect(runnerExists(s, other)).toBe(true);
    const journaled = (await sweepEntries(s.h)).map((entry) => entry.reason).join("\n");
    expect(journaled).toContain(`github-runner:`);
    expect(journaled).toMatch(/marked .*ghost-runner: no-live-instance/);
  });

  it("terminates an instance whose agent stopped within two sweeps after its boot deadline", async () => {
    const s = await start();
    const { instanceId } = await runJob(s, 30);
    await pass(s.h, s.clock, 60);
    const stopped = await call(s.h, "PUT", `/sim/fleet/instances/${instanceId}/agent`, { stopped: true });
    expect(stopped.status).toBe(200);

    // Silent, but within the boot deadline: nothing to mark yet.
    await pass(s.h, s.clock, BOOT_GRACE_MS / 2000);
    const early = await sweep(s);
    expect(early.survey.complete).toBe(true);
    expect(early.survey.marked["orphan-instance"]).toBe(0);

    await pass(s.h, s.clock, BOOT_GRACE_MS / 2000 + 30);
    const first = await sweep(s);
    expect(first.survey.marked["orphan-instance"]).toBe(1);
    expect(terminations(s.fleet, instanceId)).toEqual([]);

    const second = await sweep(s);
    expect(
      second.outcomes?.find((outcome) => outcome.action.subject === `instance:${instanceId}`)?.kind,
    ).toBe("done");
    expect(terminations(s.fleet, instanceId)).toHaveLength(1);
    await pass(s.h, s.clock, 30);
    expect(s.fleet.get(instanceId)?.lifecycle ?? "gone").not.toBe("in-service");
  }, 240_000);

  it.each(["github", "gitlab"] as const)(
    "never terminates a busy instance whose heartbeats are slow (a %s job)",
    async (source) => {
      const s = await start();
      nextId += 1;
      const job: ForgeJob = { ...githubJob(), source, id: String(nextId) };
      await runJob(s, 3 * 3600, job);
      const instanceId = (await s.h.ledger.get({ source, id: job.id }))?.instanceId ?? "";
      // Slower than the boot deadline: the instance looks silent for minutes at a time.
      const slowed = await call(s.h, "PUT", `/sim/fleet/instances/${instanceId}/agent`, {
        heartbeatEverySeconds: 25 * 60,
      });
      expect(slowed.status).toBe(200);
      const outcomes: SweepActOutcome[] = [];
      let marked = 0;
      for (let minute = 0; minute < 60; minute += 5) {
        await pass(s.h, s.clock, 300);
        const answer = await sweep(s);
        expect(answer.survey.complete).toBe(true);
        marked += answer.survey.marked["orphan-instance"];
        outcomes.push(...(answer.outcomes ?? []));
      }
      expect(terminations(s.fleet, instanceId)).toEqual([]);
      expect(s.fleet.get(instanceId)?.lifecycle).toBe("in-service");
      expect((await s.h.ledger.get({ source, id: job.id }))?.status).toBe("running");
      const onIt = outcomes.filter((outcome) => outcome.action.subject === `instance:${instanceId}`);
      if (source === "github") {
        // GitHub lists its runner busy: the survey never takes it for an orphan.
        expect(marked).toBe(0);
      } else {
        // Taken for an orphan while silent; the fresh read before acting asks GitLab, which runs its job.
        expect(marked).toBeGreaterThan(0);
        expect(onIt.length).toBeGreaterThan(0);
        for (const outcome of onIt) {
          expect(outcome).toMatchObject({ kind: "refused", why: expect.stringMatching(/not ended/) });
        }
      }
    },
    240_000,
  );

  it("reads a job whose completed webhook was lost from its forge, and records it finished", async () => {
    const s = await start();
    nextId += 1;
    const job: ForgeJob = { ...githubJob(), source: "gitlab", id: String(nextId) };
    await runJob(s, 120, job);
    // Every webhook from here on is lost: the ledger never hears that the job finished.
    expect((await call(s.h, "PUT", "/sim/forge/webhook-loss", { rate: 1 })).status).toBe(200);
    await pass(s.h, s.clock, 180);
    expect((await s.h.ledger.get({ source: "gitlab", id: job.id }))?.status).toBe("running");

    const answer = await sweep(s);
    expect(answer.survey.complete).toBe(true);
    expect(answer.survey.applied).toBe(1);
    expect((await s.h.ledger.get({ source: "gitlab", id: job.id }))?.status).toBe("completed");
    const journaled = (await sweepEntries(s.h)).map((entry) => entry.reason).join("\n");
    expect(journaled).toMatch(new RegExp(`stuck gitlab job ${job.id} \\(not-reported-by-instance\\)`));
  }, 240_000);

  describe.each([
    ["500", "500"],
    ["429", "429"],
    ["a truncated page", "truncated"],
  ] as const)("a runner listing that fails with %s", (_name, kind) => {
    it("makes the sweep mark and act on nothing, and the next whole sweep carries on", async () => {
      const s = await start();
      const ghost = await createGhost(s.h);
      expect((await sweep(s)).survey.marked["ghost-runner"]).toBe(1);

      // Enough failing calls to outlast the client's own retries (of a 5xx, or after a 429's wait).
      const fault = await call(s.h, "PUT", "/sim/forge/faults", { github: { kind, calls: 20 } });
      expect(fault.status).toBe(200);
      const faulty = await sweep(s);
      expect(faulty.survey.complete).toBe(false);
      expect(faulty.survey.due).toEqual([]);
      expect(faulty.survey.unknown.map((item) => item.listing).join()).toMatch(/github-runners/);
      expect(faulty.outcomes ?? []).toEqual([]);
      expect(runnerExists(s, ghost)).toBe(true);
      const left = (await (await fetch(`${s.h.url}/sim/forge/faults`)).json()) as {
        github?: { calls: number };
      };
      expect(left.github?.calls).toBeLessThan(20);

      // The forge recovers (and a rate limit's wait passes): the mark still holds, and this sweep acts on it.
      expect((await call(s.h, "PUT", "/sim/forge/faults", { github: null })).status).toBe(200);
      await pass(s.h, s.clock, 120);
      const whole = await sweep(s);
      expect(whole.survey.complete).toBe(true);
      expect(whole.outcomes?.map((outcome) => outcome.kind)).toEqual(["done"]);
      expect(runnerExists(s, ghost)).toBe(false);
    });
  });

  it("deletes an offline GitLab manager of an instance that is gone; a failing manager listing stops it", async () => {
    // A pool registered in a GitLab project: the sweep lists its runner's managers.
    const s = await start({ pools: [{ ...pool, gitlab: { project: "acme/app" } }] });
    const made = await call(s.h, "POST", "/sim/forge/runners", {
      forge: "gitlab",
      pool: "x86",
      instanceId: "i-0000000000000beef",
    });
    expect(made.status).toBe(201);
    const { runnerId, systemId } = (await made.json()) as { runnerId: number; systemId: string };
    const managers = () => s.h.simulation?.forge.gitlab.runner(runnerId)?.managers ?? [];
    // GitLab shows a manager online for two hours after its last contact.
    expect((await sweep(s)).survey.marked["offline-manager"]).toBe(0);
    await s.clock.advance(2 * 3600_000 + 60_000);
    await s.h.idle();
    expect((await sweep(s)).survey.marked["offline-manager"]).toBe(1);

    const fault = await call(s.h, "PUT", "/sim/forge/faults", { gitlab: { kind: "500", calls: 20 } });
    expect(fault.status).toBe(200);
    const faulty = await sweep(s);
    expect(faulty.survey.complete).toBe(false);
    expect(faulty.survey.unknown.map((item) => item.listing).join()).toMatch(/gitlab-managers:x86/);
    expect(managers()).toContain(systemId);

    expect((await call(s.h, "PUT", "/sim/forge/faults", { gitlab: null })).status).toBe(200);
    const whole = await sweep(s);
    expect(whole.outcomes?.map((outcome) => [outcome.kind, outcome.action.class])).toEqual([
      ["done", "offline-manager"],
    ]);
    expect(managers()).not.toContain(systemId);
  }, 240_000);

  it("in a dry run, journals what it would do and deletes nothing", async () => {
    const s = await start({ dryRun: true });
    const ghost = await createGhost(s.h);
    await sweep(s);
    const second = await sweep(s);
    expect(second.survey.dryRun).toBe(true);
    expect(second.outcomes?.map((outcome) => outcome.kind)).toEqual(["dry-run"]);
    expect(runnerExists(s, ghost)).toBe(true);
    const journaled = (await sweepEntries(s.h)).map((entry) => entry.reason).join("\n");
    expect(journaled).toMatch(/would/);
  });
});

describe("local mode's sweep controls", () => {
  it("refuse hostile input and change nothing", async () => {
    const s = await start();
    const before = s.h.simulation?.forge.github.all().length;
    for (const body of [
      "{not json",
      { forge: "github", scope, name: "" },
      { forge: "github", scope: { organization: "../x" }, name: ghostName },
      { forge: "github", scope, name: ghostName, extra: 1 },
      { forge: "gitlab", pool: "x86", instanceId: "not-an-instance" },
      { forge: "gitlab", pool: "nope", instanceId: "i-0123" },
      { forge: "bitbucket" },
    ]) {
      const response = await call(s.h, "POST", "/sim/forge/runners", body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    expect(s.h.simulation?.forge.github.all().length).toBe(before);

    for (const body of [
      {},
      { github: { kind: "503", calls: 1 } },
      { github: { kind: "500", calls: 0 } },
      { github: { kind: "500", calls: 1_000_000 } },
      { github: { kind: "500", calls: 1 }, gitlab: { kind: "429" } },
      { forge: "github" },
    ]) {
      const response = await call(s.h, "PUT", "/sim/forge/faults", body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    expect(await (await fetch(`${s.h.url}/sim/forge/faults`)).json()).toEqual({});

    for (const [id, body, status] of [
      ["i-0123", { stopped: "yes" }, 400],
      ["i-0123", {}, 400],
      ["i-0123", { heartbeatEverySeconds: 0 }, 400],
      ["instance-1", { stopped: true }, 400],
      ["i-0000000000000dead", { stopped: true }, 404],
    ] as const) {
      const response = await call(s.h, "PUT", `/sim/fleet/instances/${id}/agent`, body);
      expect(response.status, `${id} ${JSON.stringify(body)}`).toBe(status);
    }

    // A well-formed GitLab ghost: a manager of the pool's runner that no instance runs.
    const made = await call(s.h, "POST", "/sim/forge/runners", {
      forge: "gitlab",
      pool: "x86",
      instanceId: "i-0000000000000beef",
    });
    expect(made.status).toBe(201);
    const { runnerId, systemId } = (await made.json()) as { runnerId: number; systemId: string };
    expect(s.h.simulation?.forge.gitlab.runner(runnerId)?.managers).toContain(systemId);
  });

  it("ask for the status token when one is set", async () => {
    const started = await startTestHearth({
      pools: [pool],
      initialWarmPool: 0,
      sweepSeconds: 0,
      statusToken: "t0k",
    });
    closing(started.hearth);
    for (const [method, path] of [
      ["POST", "/sim/sweep"],
      ["POST", "/sim/forge/runners"],
      ["PUT", "/sim/forge/faults"],
      ["GET", "/sim/forge/faults"],
      ["PUT", "/sim/fleet/instances/i-0123/agent"],
    ] as const) {
      const response = await fetch(`${started.hearth.url}${path}`, { method });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
    const authorized = await fetch(`${started.hearth.url}/sim/sweep`, {
      method: "POST",
      headers: { authorization: "Bearer t0k" },
    });
    expect(authorized.status).toBe(200);
  });
});
