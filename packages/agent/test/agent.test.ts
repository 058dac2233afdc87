import { gitlabSystemId } from "@hearth/core/gitlab-api";
import { afterEach, describe, expect, it } from "vitest";
import { Agent } from "../src/agent";
import type { AgentPorts } from "../src/ports";
import { harness, INSTANCE, PREFIX } from "./support/fakes";

let current: ReturnType<typeof harness> | undefined;
function start(settings: Parameters<typeof harness>[0] = {}) {
  current = harness(settings);
  return current;
}
afterEach(() => {
  current?.agent.stop();
  // Every heartbeat the agent sent passed core's schema.
  expect(current?.controlPlane.invalid).toEqual([]);
  current = undefined;
});

describe("the agent's heartbeat", () => {
  it("heartbeats at once when it starts, then every 15 s, speaking version 3", async () => {
    const { agent, clock, controlPlane } = start();
    agent.run();
    await clock.advance(0);
    expect(controlPlane.beats).toHaveLength(1);
    expect(controlPlane.last).toMatchObject({
      protocol: 3,
      claiming: true,
      instanceId: INSTANCE,
      runner: "ready",
      slots: 2,
      runningJobs: [],
      cacheKeys: ["acme/app:build"],
      storeBytes: 21_474_836_480,
      freeDiskBytes: 53_687_091_200,
      pushQueueDepth: 3,
      pushLagSeconds: 12,
      interruption: null,
      slotRunners: [],
      gitlabManager: null,
    });
    await clock.advance(14_000);
    expect(controlPlane.beats).toHaveLength(1);
    await clock.advance(1_000);
    expect(controlPlane.beats).toHaveLength(2);
    await clock.advance(30_000);
    expect(controlPlane.beats).toHaveLength(4);
  });

  it("picks up a runner config for a free slot and reports it listening at once", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.hand(parameters, 1, 30121);
    agent.run();
    await clock.advance(0);
    expect(runners.started).toEqual([{ slot: 1, config: "jit-config-30121" }]);
    // The answer to the first heartbeat handed it; the second, at once, reports it.
    expect(controlPlane.beats).toHaveLength(2);
    expect(controlPlane.last.slotRunners).toEqual([{ slot: 1, runnerId: 30121, state: "listening" }]);
    expect(controlPlane.handed).toEqual([]);
    // Never logged: the config is a secret.
    expect(current?.log.text).not.toContain("jit-config-30121");
  });

  it("reports a running job, then the runner exited, and forgets it once the answer came", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "28311903001" });
    await clock.advance(5_000);
    // A slot's change is reported at the next observation, not 15 s later.
    expect(controlPlane.beats).toHaveLength(3);
    expect(controlPlane.last).toMatchObject({
      runner: "busy",
      runningJobs: [{ source: "github", id: "28311903001" }],
      slotRunners: [
        { slot: 0, runnerId: 501, state: "running", job: { source: "github", id: "28311903001" } },
      ],
    });
    runners.finish(0);
    // The next runner for the slot, handed in the answer to the heartbeat that reports the exit.
    controlPlane.hand(parameters, 0, 502);
    await clock.advance(5_000);
    const exited = controlPlane.beats.findIndex((beat) => beat.slotRunners.some((r) => r.state === "exited"));
    expect(controlPlane.beats[exited]?.slotRunners).toEqual([{ slot: 0, runnerId: 501, state: "exited" }]);
    expect(controlPlane.beats[exited]?.runningJobs).toEqual([]);
    // Heard: 501 is forgotten, 502 started on the slot and reported at once.
    expect(controlPlane.last.slotRunners).toEqual([{ slot: 0, runnerId: 502, state: "listening" }]);
    expect(runners.started.map((s) => s.config)).toEqual(["jit-config-501", "jit-config-502"]);
  });

  it("keeps reporting an exited runner until a heartbeat is taken", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    runners.finish(0);
    controlPlane.down = true;
    await clock.advance(5_000);
    controlPlane.down = false;
    await clock.advance(60_000);
    const reports = controlPlane.beats.filter((beat) => beat.slotRunners.some((r) => r.runnerId === 501));
    expect(reports.at(-1)?.slotRunners).toEqual([{ slot: 0, runnerId: 501, state: "exited" }]);
    expect(controlPlane.last.slotRunners).toEqual([]);
  });

  it("ignores a config for a slot that holds a runner", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    const busy = controlPlane.hand(parameters, 0, 777);
    parameters.reads.length = 0;
    await clock.advance(15_000);
    expect(parameters.reads).not.toContain(busy.parameter);
    expect(runners.started.map((s) => s.config)).toEqual(["jit-config-501"]);
    expect(controlPlane.last.slotRunners).toEqual([{ slot: 0, runnerId: 501, state: "listening" }]);
  });

  it("drops a config whose parameter is gone (withdrawn) and one outside its own parameters", async () => {
    const { agent, clock, controlPlane, parameters, runners, log } = start();
    const withdrawn = controlPlane.hand(parameters, 0, 601);
    parameters.values.delete(withdrawn.parameter);
    controlPlane.handed.push({ slot: 1, runnerId: 602, parameter: `${PREFIX}i-0fffffffffffffff0/1-602` });
    parameters.values.set(`${PREFIX}i-0fffffffffffffff0/1-602`, "someone else's");
    agent.run();
    await clock.advance(0);
    expect(parameters.reads).toContain(withdrawn.parameter);
    expect(parameters.reads).not.toContain(`${PREFIX}i-0fffffffffffffff0/1-602`);
    expect(runners.started).toEqual([]);
    expect(controlPlane.last.slotRunners).toEqual([]);
    expect(log.lines.map((l) => l.message)).toContain("a runner config was withdrawn before it was read");
    // The agent keeps heartbeating at its pace.
    await clock.advance(15_000);
    expect(controlPlane.beats).toHaveLength(2);
  });

  it("starts no runner from a version-0 answer", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.protocol = 0;
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(30_000);
    expect(runners.started).toEqual([]);
    expect(agent.state().protocol).toBe(0);
  });

  it("keeps its heartbeat's pace when the wall clock steps back, as a time synchronisation may", async () => {
    const { agent, clock, controlPlane } = start();
    agent.run();
    await clock.advance(15_000);
    expect(controlPlane.beats).toHaveLength(2);
    clock.stepWallClock(-3600_000);
    await clock.advance(30_000);
    expect(controlPlane.beats).toHaveLength(4);
  });
});

describe("draining", () => {
  it("on `drain`: starts no runner, stops idle listeners and sends gitlab-runner SIGQUIT", async () => {
    const { agent, clock, controlPlane, parameters, runners, gitlab } = start();
    parameters.values.set(
      "/hearth/test/pools/default/credentials",
      JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-secret" } }),
    );
    controlPlane.hand(parameters, 0, 501);
    controlPlane.hand(parameters, 1, 502);
    agent.run();
    await clock.advance(0);
    runners.takeJob(1, { source: "github", id: "42" });
    await clock.advance(5_000);
    expect(gitlab.started?.systemId).toBe(gitlabSystemId(INSTANCE));
    controlPlane.drain = true;
    await clock.advance(15_000);
    // The idle listener is stopped and reported exited; the busy one keeps its job.
    expect(runners.stopped.map((s) => s.slot)).toEqual([0]);
    expect(gitlab.calls).toEqual(["start", "SIGQUIT"]);
    expect(controlPlane.last.slotRunners).toEqual([
      { slot: 0, runnerId: 501, state: "exited" },
      { slot: 1, runnerId: 502, state: "running", job: { source: "github", id: "42" } },
    ]);
    expect(controlPlane.last.runner).toBe("draining");
    await clock.advance(15_000);
    expect(controlPlane.last.slotRunners).toEqual([
      { slot: 1, runnerId: 502, state: "running", job: { source: "github", id: "42" } },
    ]);
    // A config handed anyway is not started.
    controlPlane.drain = false;
    controlPlane.hand(parameters, 0, 503);
    controlPlane.drain = true;
    await clock.advance(60_000);
    expect(runners.started.map((s) => s.slot)).toEqual([0, 1]);
    expect(current?.log.text).not.toContain("glrt-secret");
  });
});

describe("spot notices", () => {
  it("reports a notice at once, drains, and stops a running job's runner 30 s before the deadline", async () => {
    const { agent, clock, controlPlane, parameters, runners, gitlab, imds } = start();
    parameters.values.set(
      "/hearth/test/pools/default/credentials",
      JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-secret" } }),
    );
    controlPlane.hand(parameters, 0, 501);
    controlPlane.hand(parameters, 1, 502);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "7" });
    await clock.advance(15_000);
    const beatsBefore = controlPlane.beats.length;
    const deadline = clock.now() + 2 * 60_000 + 2_000;
    imds.spot = { action: "terminate", time: new Date(deadline).toISOString() };
    await clock.advance(5_000);
    // Within one poll (5 s): reported at once, not at the next 15 s heartbeat.
    const warned = controlPlane.beats.slice(beatsBefore).find((beat) => beat.interruption);
    expect(warned).toMatchObject({
      runner: "draining",
      interruption: { action: "terminate", time: new Date(deadline).toISOString() },
    });
    expect(gitlab.calls).toEqual(["start", "SIGQUIT"]);
    // The idle listener is stopped at once; the running job keeps its runner for now.
    expect(runners.stopped).toEqual([{ slot: 1, at: expect.any(Number) }]);
    await clock.advance(deadline - 30_000 - clock.now() - 1);
    expect(runners.stopped.map((s) => s.slot)).toEqual([1]);
    await clock.advance(1);
    expect(runners.stopped).toEqual([
      { slot: 1, at: expect.any(Number) },
      { slot: 0, at: deadline - 30_000 },
    ]);
    expect(gitlab.calls).toEqual(["start", "SIGQUIT", "SIGTERM"]);
    // Reported exited at once, with why it stopped (the idle listener ran no job: not reported).
    expect(controlPlane.last.slotRunners).toEqual([{ slot: 0, runnerId: 501, state: "exited" }]);
    expect(controlPlane.last.stoppedRunners).toEqual([
      {
        slot: 0,
        runnerId: 501,
        reason: "interruption-deadline",
        at: new Date(deadline - 30_000).toISOString(),
      },
    ]);
    expect(controlPlane.last.runningJobs).toEqual([]);
    await clock.advance(15_000);
    expect(controlPlane.last.slotRunners).toEqual([]);
    // Reported once.
    expect(controlPlane.last.stoppedRunners).toEqual([]);
    expect(runners.started).toHaveLength(2);
  });

  it("reports gitlab-runner's jobs stopped before the deadline, with its runner id", async () => {
    const { agent, clock, controlPlane, parameters, gitlab, imds } = start();
    parameters.values.set(
      "/hearth/test/pools/default/credentials",
      JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-secret" } }),
    );
    gitlab.registeredId = 812;
    agent.run();
    await clock.advance(0);
    gitlab.jobs = [{ source: "gitlab", id: "4411" }];
    const deadline = clock.now() + 2 * 60_000;
    imds.spot = { action: "terminate", time: new Date(deadline).toISOString() };
    await clock.advance(deadline - 30_000 - clock.now());
    expect(gitlab.calls).toEqual(["start", "SIGQUIT", "SIGTERM"]);
    expect(controlPlane.last.stoppedRunners).toEqual([
      {
        slot: null,
        runnerId: 812,
        reason: "interruption-deadline",
        at: new Date(deadline - 30_000).toISOString(),
      },
    ]);
  });
});

describe("the job time limit", () => {
  it("stops a GitHub runner whose job runs past maxJobSeconds, logs it and reports it once", async () => {
    const { agent, clock, controlPlane, parameters, runners, log } = start({ maxJobSeconds: 600 });
    controlPlane.hand(parameters, 0, 501);
    controlPlane.hand(parameters, 1, 502);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "28311903001" });
    await clock.advance(5_000);
    const tookJobAt = clock.now();
    await clock.advance(60_000);
    runners.takeJob(1, { source: "github", id: "28311903002" });
    // Slot 0's job has run 595 s: not yet.
    await clock.advance(tookJobAt + 595_000 - clock.now());
    expect(runners.stopped).toEqual([]);
    await clock.advance(5_000);
    expect(runners.stopped).toEqual([{ slot: 0, at: tookJobAt + 600_000 }]);
    // Reported at once: the slot exited, and why.
    expect(controlPlane.last.slotRunners).toContainEqual({ slot: 0, runnerId: 501, state: "exited" });
    expect(controlPlane.last.stoppedRunners).toEqual([
      { slot: 0, runnerId: 501, reason: "max-job-time", at: new Date(tookJobAt + 600_000).toISOString() },
    ]);
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        level: "warn",
        message: "stopped a runner whose job ran past the pool's time limit",
        fields: expect.objectContaining({ slot: 0, runnerId: 501, job: "github#28311903001" }),
      }),
    );
    await clock.advance(15_000);
    expect(controlPlane.last.stoppedRunners).toEqual([]);
    // Slot 1 took its job about a minute later: stopped about a minute later.
    await clock.advance(tookJobAt + 655_000 - clock.now());
    expect(runners.stopped.map((stop) => stop.slot)).toEqual([0]);
    await clock.advance(15_000);
    expect(runners.stopped.map((stop) => stop.slot)).toEqual([0, 1]);
  });

  it("keeps a stop until a heartbeat is taken, and stops nothing without a limit", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start({ maxJobSeconds: 600 });
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "9" });
    await clock.advance(5_000);
    controlPlane.down = true;
    await clock.advance(600_000);
    expect(runners.stopped.map((stop) => stop.slot)).toEqual([0]);
    controlPlane.down = false;
    await clock.advance(60_000);
    const reports = controlPlane.beats.filter((beat) => beat.stoppedRunners.length > 0);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.stoppedRunners).toMatchObject([{ slot: 0, runnerId: 501, reason: "max-job-time" }]);

    current?.agent.stop();
    const unlimited = start();
    unlimited.controlPlane.hand(unlimited.parameters, 0, 601);
    unlimited.agent.run();
    await unlimited.clock.advance(0);
    unlimited.runners.takeJob(0, { source: "github", id: "10" });
    await unlimited.clock.advance(24 * 3600_000);
    expect(unlimited.runners.stopped).toEqual([]);
  });
});

describe("the GitLab runner manager", () => {
  it("reports the runner's id once gitlab-runner has registered", async () => {
    const { agent, clock, controlPlane, parameters, gitlab } = start();
    parameters.values.set(
      "/hearth/test/pools/default/credentials",
      JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-secret" } }),
    );
    agent.run();
    await clock.advance(0);
    expect(controlPlane.last.gitlabManager).toEqual({ runnerId: null, systemId: gitlabSystemId(INSTANCE) });
    gitlab.registeredId = 812;
    await clock.advance(15_000);
    expect(controlPlane.last.gitlabManager).toEqual({ runnerId: 812, systemId: gitlabSystemId(INSTANCE) });
  });

  it("reports a rebalance recommendation and drains, without a deadline", async () => {
    const { agent, clock, controlPlane, imds, runners, parameters } = start();
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "8" });
    imds.rebalance = { noticeTime: new Date(clock.now()).toISOString() };
    await clock.advance(5_000);
    expect(controlPlane.last.interruption).toEqual({ action: "rebalance", time: imds.rebalance.noticeTime });
    expect(controlPlane.last.runner).toBe("draining");
    await clock.advance(10 * 60_000);
    expect(runners.stopped).toEqual([]);
  });
});

describe("when the control plane cannot be reached", () => {
  it("retries with backoff up to 60 s and never stops a running job", async () => {
    const { agent, clock, controlPlane, parameters, runners } = start();
    controlPlane.hand(parameters, 0, 501);
    agent.run();
    await clock.advance(0);
    runners.takeJob(0, { source: "github", id: "9" });
    await clock.advance(5_000);
    controlPlane.down = true;
    const downAt = clock.now();
    controlPlane.attempts.length = 0;
    await clock.advance(10 * 60_000);
    const gaps = controlPlane.attempts.map((at, i) => (at - (controlPlane.attempts[i - 1] ?? downAt)) / 1000);
    // Due 15 s after the last one taken, then 5, 10, 20, 40 and at most 60 s apart.
    expect(gaps.slice(0, 6)).toEqual([15, 5, 10, 20, 40, 60]);
    expect(Math.max(...gaps)).toBe(60);
    expect(agent.state().failures).toBe(gaps.length);
    expect(runners.stopped).toEqual([]);
    controlPlane.down = false;
    await clock.advance(60_000);
    expect(agent.state().failures).toBe(0);
    expect(controlPlane.last.runningJobs).toEqual([{ source: "github", id: "9" }]);
  });

  it("backs off on a 403 (an instance Auto Scaling does not list yet)", async () => {
    const { agent, clock, controlPlane } = start();
    controlPlane.refuse = { status: 403, code: "unknown_instance" };
    agent.run();
    await clock.advance(0);
    await clock.advance(5_000);
    await clock.advance(10_000);
    expect(controlPlane.attempts).toHaveLength(3);
    controlPlane.refuse = null;
    await clock.advance(20_000);
    expect(controlPlane.beats).toHaveLength(1);
  });

  it("sends fewer cache keys after a 413", async () => {
    const { agent, clock, controlPlane, figures } = start();
    figures.cacheKeys = Array.from({ length: 64 }, (_, i) => `acme/app:job-${i}`);
    controlPlane.refuse = { status: 413, code: "payload_too_large" };
    agent.run();
    await clock.advance(0);
    controlPlane.refuse = null;
    await clock.advance(5_000);
    expect(controlPlane.last.cacheKeys).toHaveLength(32);
  });
});

/** The pool has a GitLab runner: its credentials are in the pool's parameter. */
const withGitLab = (h: ReturnType<typeof harness>) =>
  h.parameters.values.set(
    "/hearth/test/pools/default/credentials",
    JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-secret" } }),
  );

describe("a release (protocol 2)", () => {
  it("on `release`: stops its listeners and gitlab-runner, starts no runner, and says `claiming: false` at once", async () => {
    const h = start();
    withGitLab(h);
    h.controlPlane.hand(h.parameters, 0, 501);
    h.controlPlane.hand(h.parameters, 1, 502);
    h.agent.run();
    await h.clock.advance(0);
    expect(h.controlPlane.last.claiming).toBe(true);
    h.controlPlane.release = true;
    const beats = h.controlPlane.beats.length;
    await h.clock.advance(15_000);
    // The answer saying `release` is followed at once by a heartbeat confirming it.
    const [asked, confirmed] = h.controlPlane.beats.slice(beats);
    expect(asked?.claiming).toBe(true);
    expect(confirmed).toMatchObject({ runner: "ready", runningJobs: [], claiming: false });
    expect(confirmed?.slotRunners).toEqual([
      { slot: 0, runnerId: 501, state: "exited" },
      { slot: 1, runnerId: 502, state: "exited" },
    ]);
    expect(h.runners.stopped.map((s) => s.slot)).toEqual([0, 1]);
    // systemctl stop, not SIGQUIT: systemd restarts a unit whose process ended, not a stopped one.
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.agent.state().releasing).toBe(true);
    // A config handed meanwhile is not picked up; the agent stays quiet.
    h.controlPlane.release = false;
    h.controlPlane.hand(h.parameters, 0, 503);
    h.controlPlane.release = true;
    await h.clock.advance(60_000);
    expect(h.runners.started.map((s) => s.slot)).toEqual([0, 1]);
    expect(h.controlPlane.last.claiming).toBe(false);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
  });

  it("claims again when the release is called off: gitlab-runner restarts, configs are picked up", async () => {
    const h = start();
    withGitLab(h);
    h.controlPlane.hand(h.parameters, 0, 501);
    h.agent.run();
    await h.clock.advance(0);
    h.controlPlane.release = true;
    await h.clock.advance(15_000);
    expect(h.controlPlane.last.claiming).toBe(false);
    // The credentials were rotated meanwhile: the restart reads them anew.
    h.parameters.values.set(
      "/hearth/test/pools/default/credentials",
      JSON.stringify({ gitlab: { url: "https://gitlab.example.com", token: "glrt-rotated" } }),
    );
    h.controlPlane.release = false;
    h.controlPlane.hand(h.parameters, 0, 504);
    await h.clock.advance(15_000);
    expect(h.gitlab.calls).toEqual(["start", "stop", "start"]);
    expect(h.gitlab.started?.credentials.token).toBe("glrt-rotated");
    expect(h.runners.started.map((s) => s.config)).toEqual(["jit-config-501", "jit-config-504"]);
    expect(h.controlPlane.last).toMatchObject({
      claiming: true,
      slotRunners: [{ slot: 0, runnerId: 504, state: "listening" }],
    });
    expect(h.agent.state().releasing).toBe(false);
    expect(h.log.text).not.toContain("glrt-");
  });

  it("keeps saying it claims while gitlab-runner finishes a job it took, and reports the job", async () => {
    const h = start();
    withGitLab(h);
    h.agent.run();
    await h.clock.advance(0);
    h.gitlab.jobs = [{ source: "gitlab", id: "900" }];
    h.controlPlane.release = true;
    await h.clock.advance(15_000);
    // Stopped, but still running its job: it could not confirm, and the job tells the control plane.
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.controlPlane.last).toMatchObject({
      claiming: true,
      runner: "busy",
      runningJobs: [{ source: "gitlab", id: "900" }],
    });
    h.gitlab.jobs = [];
    await h.clock.advance(15_000);
    expect(h.controlPlane.last).toMatchObject({ claiming: false, runningJobs: [] });
  });

  it("does not start gitlab-runner while a release holds, and a restarted agent remembers the release", async () => {
    const h = start();
    withGitLab(h);
    let saved: unknown = null;
    const memory = {
      load: async () => saved,
      save: async (value: unknown) => {
        saved = JSON.parse(JSON.stringify(value));
      },
    };
    const settings = {
      slots: 2,
      poolCredentialsParameter: "/hearth/test/pools/default/credentials",
      runnerConfigPrefix: PREFIX,
    };
    const before = new Agent({ ...portsOf(h), memory }, settings);
    before.run();
    await h.clock.advance(0);
    h.controlPlane.release = true;
    await h.clock.advance(15_000);
    before.stop();
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    const after = new Agent({ ...portsOf(h), memory }, settings);
    after.run();
    await h.clock.advance(30_000);
    after.stop();
    // Never started again, never said it claims: the confirmation it gave stays true.
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.controlPlane.last.claiming).toBe(false);
  });

  it("an answer of version 1 carries no release: the agent claims as before", async () => {
    const h = start();
    h.controlPlane.protocol = 1;
    h.controlPlane.release = true;
    h.controlPlane.hand(h.parameters, 0, 501);
    h.agent.run();
    await h.clock.advance(0);
    expect(h.runners.started).toHaveLength(1);
    expect(h.agent.state().releasing).toBe(false);
  });
});

describe("a hold (protocol 3)", () => {
  /** An agent running gitlab-runner whose pool holds it: gitlab-runner started, then stopped. */
  async function heldWithGitLab() {
    const h = start();
    withGitLab(h);
    h.agent.run();
    await h.clock.advance(0);
    h.controlPlane.hold = true;
    await h.clock.advance(15_000);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    return h;
  }

  it("on `hold`: claims no job and says so at once; when lifted, claims again", async () => {
    const h = start();
    withGitLab(h);
    h.controlPlane.hand(h.parameters, 0, 501);
    h.agent.run();
    await h.clock.advance(0);
    expect(h.controlPlane.last.claiming).toBe(true);
    h.controlPlane.hold = true;
    const beats = h.controlPlane.beats.length;
    await h.clock.advance(15_000);
    const [asked, confirmed] = h.controlPlane.beats.slice(beats);
    expect(asked?.claiming).toBe(true);
    expect(confirmed).toMatchObject({
      claiming: false,
      slotRunners: [{ slot: 0, runnerId: 501, state: "exited" }],
    });
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.agent.state()).toMatchObject({ holding: true, releasing: false });
    // Held: a config handed meanwhile is not picked up.
    h.controlPlane.hold = false;
    h.controlPlane.hand(h.parameters, 1, 502);
    h.controlPlane.hold = true;
    await h.clock.advance(30_000);
    expect(h.runners.started.map((s) => s.config)).toEqual(["jit-config-501"]);
    expect(h.controlPlane.last.claiming).toBe(false);
    // Lifted: gitlab-runner starts again and the config is picked up.
    h.controlPlane.hold = false;
    await h.clock.advance(15_000);
    expect(h.gitlab.calls).toEqual(["start", "stop", "start"]);
    expect(h.runners.started.map((s) => s.config)).toEqual(["jit-config-501", "jit-config-502"]);
    expect(h.controlPlane.last.claiming).toBe(true);
    expect(h.agent.state().holding).toBe(false);
  });

  it("a runner handed a job while the answer asking the hold was on its way is not stopped", async () => {
    const h = start();
    h.controlPlane.hand(h.parameters, 0, 501);
    h.controlPlane.hand(h.parameters, 1, 502);
    h.agent.run();
    await h.clock.advance(0);
    expect(h.controlPlane.last.slotRunners?.map((r) => r.state)).toEqual(["listening", "listening"]);
    // The forge hands slot 1 a job during the heartbeat whose answer says hold.
    const answer = h.controlPlane.port.heartbeat;
    h.controlPlane.port.heartbeat = async (body) => {
      const reply = await answer(body);
      if (h.controlPlane.hold && h.runners.slots.get(1)?.observed.state === "listening")
        h.runners.takeJob(1, { source: "github", id: "77" });
      return reply;
    };
    h.controlPlane.hold = true;
    await h.clock.advance(15_000);
    expect(h.runners.stopped.map((s) => s.slot)).toEqual([0]);
    expect(h.controlPlane.last).toMatchObject({
      claiming: false,
      slotRunners: [
        { slot: 0, runnerId: 501, state: "exited" },
        { slot: 1, runnerId: 502, state: "running", job: { source: "github", id: "77" } },
      ],
    });
  });

  it("a listener that cannot be looked at is not stopped blind: the next step stops it", async () => {
    const h = start();
    h.controlPlane.hand(h.parameters, 0, 501);
    h.agent.run();
    await h.clock.advance(0);
    const inspect = h.runners.inspect.bind(h.runners);
    let broken = false;
    h.runners.inspect = async (slots) => {
      if (broken) throw new Error("systemctl: connection refused");
      return inspect(slots);
    };
    // Broken from the answer asking the hold on: the step's own observation fails too.
    const answer = h.controlPlane.port.heartbeat;
    h.controlPlane.port.heartbeat = async (body) => {
      const reply = await answer(body);
      if (h.controlPlane.hold) broken = true;
      return reply;
    };
    h.controlPlane.hold = true;
    await h.clock.advance(15_000);
    expect(h.runners.stopped).toEqual([]);
    expect(h.controlPlane.last.claiming).toBe(true);
    expect(h.log.text).toContain("could not look at a runner before stopping it");
    broken = false;
    h.controlPlane.port.heartbeat = answer;
    await h.clock.advance(5_000);
    expect(h.runners.stopped.map((s) => s.slot)).toEqual([0]);
    await h.clock.advance(15_000);
    expect(h.controlPlane.last.claiming).toBe(false);
  });

  it("a hold lifted while a release stands claims nothing, nor a release called off while held", async () => {
    const h = start();
    withGitLab(h);
    h.agent.run();
    await h.clock.advance(0);
    h.controlPlane.hold = true;
    h.controlPlane.release = true;
    await h.clock.advance(15_000);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    h.controlPlane.hold = false;
    await h.clock.advance(30_000);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.controlPlane.last.claiming).toBe(false);
    h.controlPlane.hold = true;
    h.controlPlane.release = false;
    await h.clock.advance(30_000);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.controlPlane.last.claiming).toBe(false);
    h.controlPlane.hold = false;
    await h.clock.advance(15_000);
    expect(h.gitlab.calls).toEqual(["start", "stop", "start"]);
    expect(h.controlPlane.last.claiming).toBe(true);
  });

  it("a hold lapses after 60 s without an answer (gitlab-runner claims again); a release does not", async () => {
    const h = await heldWithGitLab();
    const answeredAt = h.clock.now();
    h.controlPlane.down = true;
    // Unreachable, but not for long enough yet: still held.
    await h.clock.advance(55_000);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.agent.state().holding).toBe(true);
    await h.clock.advance(answeredAt + 60_000 + 5_000 - h.clock.now());
    expect(h.gitlab.calls).toEqual(["start", "stop", "start"]);
    expect(h.agent.state().holding).toBe(false);
    expect(h.log.text).toContain("the hold lapses");
    // Back: the answer holds it again.
    h.controlPlane.down = false;
    await h.clock.advance(60_000);
    expect(h.gitlab.calls).toEqual(["start", "stop", "start", "stop"]);
    expect(h.agent.state().holding).toBe(true);
    expect(h.controlPlane.last.claiming).toBe(false);
    // A release stands however long the control plane is away.
    h.controlPlane.hold = false;
    h.controlPlane.release = true;
    await h.clock.advance(15_000);
    h.controlPlane.down = true;
    await h.clock.advance(180_000);
    expect(h.gitlab.calls).toEqual(["start", "stop", "start", "stop"]);
    expect(h.agent.state()).toMatchObject({ releasing: true, holding: false });
  });

  it("a wall-clock step forward does not lapse a hold that answers still confirm", async () => {
    const h = await heldWithGitLab();
    h.clock.stepWallClock(120_000);
    await h.clock.advance(5_000);
    expect(h.agent.state().holding).toBe(true);
    expect(h.gitlab.calls).toEqual(["start", "stop"]);
    expect(h.log.text).not.toContain("the hold lapses");
  });

  it("an answer of version 2 carries no hold: the agent claims as before", async () => {
    const h = start();
    h.controlPlane.protocol = 2;
    h.controlPlane.hold = true;
    h.controlPlane.hand(h.parameters, 0, 501);
    h.agent.run();
    await h.clock.advance(0);
    expect(h.runners.started).toHaveLength(1);
    expect(h.agent.state().holding).toBe(false);
  });
});

describe("a restarted agent", () => {
  it("adopts the runners it started before in this boot, and reports their jobs", async () => {
    const h = start();
    let saved: unknown = null;
    const memory = {
      load: async () => saved,
      save: async (value: unknown) => {
        saved = JSON.parse(JSON.stringify(value));
      },
    };
    const settings = {
      slots: 2,
      poolCredentialsParameter: "/hearth/test/pools/default/credentials",
      runnerConfigPrefix: PREFIX,
    };
    const before = new Agent({ ...portsOf(h), memory }, settings);
    h.controlPlane.hand(h.parameters, 0, 501);
    before.run();
    await h.clock.advance(0);
    h.runners.takeJob(0, { source: "github", id: "77" });
    await h.clock.advance(5_000);
    before.stop();
    // A new agent process on the same machine, whose runner still runs its job.
    const after = new Agent({ ...portsOf(h), memory }, settings);
    const beats = h.controlPlane.beats.length;
    after.run();
    await h.clock.advance(0);
    after.stop();
    expect(h.controlPlane.beats.length).toBe(beats + 1);
    expect(h.controlPlane.last).toMatchObject({
      runner: "busy",
      runningJobs: [{ source: "github", id: "77" }],
      slotRunners: [{ slot: 0, runnerId: 501, state: "running", job: { source: "github", id: "77" } }],
    });
    expect(h.runners.started).toHaveLength(1);
  });
});

function portsOf(h: ReturnType<typeof harness>): AgentPorts {
  return {
    imds: h.imds,
    controlPlane: h.controlPlane.port,
    parameters: h.parameters,
    runners: h.runners,
    gitlab: h.gitlab.port,
    store: { measure: async () => ({ ...h.figures }) },
    clock: h.clock,
    log: h.log,
  };
}
