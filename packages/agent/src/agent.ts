import { gitlabSystemId } from "@hearth/core/gitlab-api";
import { PROTOCOL_VERSION } from "@hearth/core/runners/vocabulary";
import { type RunnerConfigInstruction, readAnswer, refusalCode } from "./answer";
import type { AgentPorts, GitLabCredentials, HeartbeatBody, JobKey, RunnerObservation } from "./ports";

/**
 * The agent's logic (docs/PROTOCOL.md, version 1), with every effect behind a port: production runs
 * it against IMDS, API Gateway, SSM and systemd; local mode and the tests against simulated ones.
 *
 * It moves in steps. `tick()` polls IMDS for spot notices, observes the slots' runners, stops runners
 * whose jobs cannot finish before an interruption, and heartbeats when one is due (every 15 s, at
 * once after boot and after any change). `run()` drives the steps on the clock port; the logic keeps
 * no timer of its own, so a fake clock drives it deterministically.
 */

/** The protocol this agent speaks: the control plane's own definition (a file with no imports). */
export { PROTOCOL_VERSION };

export interface AgentSettings {
  /** Job slots of this instance. */
  slots: number;
  /** The pool credentials parameter (`/hearth/S/pools/<pool>/credentials`). */
  poolCredentialsParameter: string;
  /**
   * Runner config parameters live under this prefix, then the instance id
   * (`/hearth/S/runners/`): an instruction naming any other parameter is dropped.
   */
  runnerConfigPrefix: string;
  heartbeatSeconds?: number;
  /** How often IMDS is polled for spot notices and the runners observed. */
  pollSeconds?: number;
  /** A running job's runner is stopped this long before an interruption's deadline. */
  stopBeforeDeadlineSeconds?: number;
  /** The longest wait between heartbeats the control plane did not take. */
  maxBackoffSeconds?: number;
  /**
   * The longest a job may run (the pool's `maxJobMinutes`): a GitHub runner whose job runs longer is
   * stopped, so the forge records it failed. Null or absent: no limit.
   */
  maxJobSeconds?: number | null;
  /**
   * Runners already on the slots when the agent starts (an agent restarted on a running machine
   * finds them again), by slot.
   */
  held?: ReadonlyArray<SlotRunner | null>;
}

export type Interruption = NonNullable<HeartbeatBody["interruption"]>;

/** A slot's GitHub runner, as the agent started it. */
export interface SlotRunner {
  runnerId: number;
  parameter: string;
  state: "listening" | "running" | "exited";
  job: JobKey | null;
  /** Epoch ms at which the agent first saw it run a job (its time limit counts from here). */
  runningSince?: number | null;
}

/** A runner the agent stopped while it ran a job, reported once in `stoppedRunners`. */
export type StoppedRunner = NonNullable<HeartbeatBody["stoppedRunners"]>[number];

const STOPPED_RUNNERS_MAX = 64;

/** What the agent knows, for the status of local mode and for tests. */
export interface AgentState {
  instanceId: string | null;
  slots: ReadonlyArray<SlotRunner | null>;
  interruption: Interruption | null;
  draining: boolean;
  /** The control plane is releasing the instance: it claims no job (protocol 2). */
  releasing: boolean;
  /**
   * The control plane holds the instance's slots (a retry waits for other capacity, or another store
   * is better placed for the queued jobs): it claims no job (protocol 3).
   */
  holding: boolean;
  /** The protocol the control plane last answered with (0 before the first answer). */
  protocol: number;
  /** Heartbeats not taken in a row (unreachable, 401, 403, 5xx). */
  failures: number;
  /** When the next heartbeat is due, on the clock's `elapsed` time (it never steps). */
  nextHeartbeatAt: number;
  gitlab: { systemId: string } | null;
}

const CACHE_KEYS_MAX = 64;

/**
 * A hold lapses once no answer has come for this long: the control plane is unreachable, and
 * gitlab-runner, which needs only GitLab, takes jobs again rather than wait for it (fail open).
 */
export const HOLD_LAPSE_MS = 60_000;

export class Agent {
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  private readonly stopBeforeMs: number;
  private readonly maxBackoffMs: number;
  private instanceId: string | null = null;
  private readonly slots: Array<SlotRunner | null>;
  private interruption: Interruption | null = null;
  /** The control plane said drain, or a spot notice came: no runner is started. */
  private drainRequested = false;
  private drainedByNotice = false;
  private gitlabDrained = false;
  private gitlabAborted = false;
  /** The control plane asked to release the instance: no job is claimed until it says otherwise. */
  private releaseRequested = false;
  /**
   * The control plane holds the instance's slots (the pool's spot runners while a retry waits for
   * on-demand capacity, or an instance whose store is not the one placement wants now): no job is
   * claimed until it says otherwise, or no answer came for `HOLD_LAPSE_MS`. Not remembered across a
   * restart: the next answer says it.
   */
  private holdRequested = false;
  /** When the control plane last took a heartbeat, on the `elapsed` time (null before the first). */
  private answeredAt: number | null = null;
  /** gitlab-runner was stopped for a release or a hold: started again when that is called off. */
  private gitlabStoppedForRelease = false;
  /** Null until the pool credentials were read; then whether gitlab-runner was started. */
  private gitlab: { systemId: string } | null | undefined;
  private protocol = 0;
  private failures = 0;
  private nextHeartbeatAt = 0;
  /** Cache keys sent at most; halved after a 413. */
  private cacheKeyLimit = CACHE_KEYS_MAX;
  /** Runners stopped for an interruption's deadline, so each is stopped once. */
  private readonly stoppedForDeadline = new Set<number>();
  /** Stops not yet heard by the control plane, oldest first. */
  private stoppedRunners: StoppedRunner[] = [];
  /** gitlab-runner's runner id in GitLab, once read. */
  private gitlabRunnerId: number | null = null;
  /** The slots as last saved to `memory`, as JSON; null until restored from it. */
  private remembered: string | null = null;
  private busy: Promise<void> = Promise.resolve();
  private stopLoop: (() => void) | null = null;
  private running = false;

  constructor(
    private readonly ports: AgentPorts,
    private readonly settings: AgentSettings,
  ) {
    this.heartbeatMs = (settings.heartbeatSeconds ?? 15) * 1000;
    this.pollMs = (settings.pollSeconds ?? 5) * 1000;
    this.stopBeforeMs = (settings.stopBeforeDeadlineSeconds ?? 30) * 1000;
    this.maxBackoffMs = (settings.maxBackoffSeconds ?? 60) * 1000;
    this.slots = Array.from({ length: settings.slots }, (_, slot) => settings.held?.[slot] ?? null);
  }

  state(): AgentState {
    return {
      instanceId: this.instanceId,
      slots: this.slots.map((slot) => (slot ? { ...slot } : null)),
      interruption: this.interruption,
      draining: this.draining,
      releasing: this.releaseRequested,
      holding: this.holdRequested,
      protocol: this.protocol,
      failures: this.failures,
      nextHeartbeatAt: this.nextHeartbeatAt,
      gitlab: this.gitlab ?? null,
    };
  }

  private get draining(): boolean {
    return this.drainRequested || this.drainedByNotice;
  }

  /** Steps never overlap: a tick and an outside `heartbeatOnce` take turns. */
  private serial<T>(step: () => Promise<T>): Promise<T> {
    const result = this.busy.then(step);
    this.busy = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** One step: notices, runners, deadline, boot chores, and a heartbeat if one is due. */
  tick(): Promise<void> {
    return this.serial(async () => {
      try {
        await this.step();
      } finally {
        await this.remember();
      }
    });
  }

  private async step(): Promise<void> {
    if (!(await this.ensureInstanceId())) return;
    // Observed first: a listener that has just taken a job is not idle any more.
    if (await this.observeRunners()) this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
    const urgent = await this.pollNotices();
    if (this.draining) await this.stopIdleListeners();
    this.lapseHold();
    await this.tendRelease();
    await this.enforceDeadline();
    await this.enforceJobTime();
    await this.startGitLab();
    if (!urgent && this.elapsed() < this.nextHeartbeatAt) return;
    // A heartbeat whose answer changed a slot (a runner started) is followed by one reporting it.
    for (let beats = 0; beats < 3 && (beats === 0 || this.elapsed() >= this.nextHeartbeatAt); beats++) {
      if (!(await this.beat())) break;
    }
  }

  /** A heartbeat now, whatever the schedule (after boot, and for callers that know of a change). */
  heartbeatOnce(): Promise<boolean> {
    return this.serial(async () => {
      if (!(await this.ensureInstanceId())) return false;
      const taken = await this.beat();
      if (taken && this.elapsed() >= this.nextHeartbeatAt) await this.beat();
      await this.remember();
      return taken;
    });
  }

  /** Milliseconds until the next step is due. */
  nextStepIn(): number {
    if (!this.instanceId) return this.pollMs;
    let next = Math.min(this.pollMs, Math.max(0, this.nextHeartbeatAt - this.elapsed()));
    const now = this.now();
    const deadline = this.stopAt();
    if (deadline !== null && deadline > now) next = Math.min(next, deadline - now);
    return Math.max(0, next);
  }

  /** Runs the steps on the clock until `stop()`: the first one, with its heartbeat, at once. */
  run(): void {
    if (this.running) return;
    this.running = true;
    const step = async () => {
      try {
        await this.tick();
      } catch (error) {
        this.ports.log.warn("agent step failed", { error: message(error) });
      }
      if (!this.running) return;
      // Never a busy loop: a step always moves the next heartbeat on, but if one did not, wait.
      const next = this.nextStepIn();
      this.stopLoop = this.ports.clock.after(next > 0 ? next : 1000, step);
    };
    this.stopLoop = this.ports.clock.after(0, step);
  }

  stop(): void {
    this.running = false;
    this.stopLoop?.();
    this.stopLoop = null;
  }

  /** Wall-clock time: for what is compared with other machines' times (a spot action's deadline). */
  private now(): number {
    return this.ports.clock.now();
  }

  /**
   * Time that never steps: for the agent's own intervals (the heartbeat's schedule, the hold's lapse),
   * which a wall-clock step (time synchronised after a resume) would otherwise stretch or cut short.
   */
  private elapsed(): number {
    return this.ports.clock.elapsed();
  }

  /** Adopts the runners a previous run of the agent started in this boot (once). */
  private async restore(): Promise<void> {
    if (this.remembered !== null || !this.ports.memory) return;
    try {
      const saved = await this.ports.memory.load();
      for (const [slot, runner] of readSavedSlots(saved, this.slots.length)) this.slots[slot] = runner;
      // A release outlives a restart of the agent: it claims nothing until an answer calls it off.
      if ((saved as { releasing?: unknown } | null)?.releasing === true) this.releaseRequested = true;
      this.remembered = this.memoryText();
    } catch (error) {
      this.remembered = "";
      this.ports.log.warn("could not read what the agent remembered", { error: message(error) });
    }
  }

  /** What `memory` keeps: the slots, and a release in progress. */
  private memoryText(): string {
    return JSON.stringify({ slots: this.slots, ...(this.releaseRequested ? { releasing: true } : {}) });
  }

  /** Saves the slots when they changed since the last save. */
  private async remember(): Promise<void> {
    if (!this.ports.memory || this.remembered === null) return;
    const now = this.memoryText();
    if (now === this.remembered) return;
    try {
      await this.ports.memory.save(JSON.parse(now));
      this.remembered = now;
    } catch (error) {
      this.ports.log.warn("could not save the slots' runners", { error: message(error) });
    }
  }

  private async ensureInstanceId(): Promise<boolean> {
    if (this.instanceId) {
      await this.restore();
      return true;
    }
    try {
      this.instanceId = await this.ports.imds.instanceId();
      await this.restore();
      return true;
    } catch (error) {
      this.ports.log.warn("IMDS does not say which instance this is yet", { error: message(error) });
      return false;
    }
  }

  /** Reads the pool credentials once and starts gitlab-runner if the pool has a GitLab runner. */
  private async startGitLab(): Promise<void> {
    if (this.gitlab !== undefined || !this.instanceId || this.claimStopped) return;
    let credentials: GitLabCredentials | null;
    try {
      const value = await this.ports.parameters.get(this.settings.poolCredentialsParameter);
      credentials = value === null ? null : gitlabCredentials(value);
    } catch (error) {
      // Retried at the next step; heartbeats go on meanwhile.
      this.ports.log.warn("could not read the pool credentials", {
        parameter: this.settings.poolCredentialsParameter,
        error: message(error),
      });
      return;
    }
    if (!credentials) {
      this.gitlab = null;
      return;
    }
    const systemId = gitlabSystemId(this.instanceId);
    try {
      await this.ports.gitlab.start(credentials, systemId);
    } catch (error) {
      this.ports.log.warn("could not start gitlab-runner", { error: message(error) });
      return;
    }
    this.gitlab = { systemId };
    this.ports.log.info("gitlab-runner started", { systemId });
    if (this.draining) await this.drainGitLab();
    this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
  }

  /** Polls IMDS; true when a new notice came (then the agent drains and reports at once). */
  private async pollNotices(): Promise<boolean> {
    let notice: Interruption | null = null;
    try {
      const action = await this.ports.imds.spotAction();
      if (action) notice = { action: action.action, time: action.time };
      else if (!this.interruption) {
        const rebalance = await this.ports.imds.rebalanceRecommendation();
        if (rebalance) notice = { action: "rebalance", time: rebalance.noticeTime };
      }
    } catch (error) {
      this.ports.log.warn("could not poll IMDS for spot notices", { error: message(error) });
      return false;
    }
    if (!notice) return false;
    // A spot action supersedes a rebalance recommendation: it has a deadline.
    const known = this.interruption;
    if (known && (known.action !== "rebalance" || notice.action === "rebalance")) return false;
    this.interruption = notice;
    this.drainedByNotice = true;
    this.ports.log.warn("spot notice: draining", { action: notice.action, time: notice.time });
    await this.stopIdleListeners();
    await this.drainGitLab();
    return true;
  }

  /** Updates each held runner from what the machine shows; true when any changed. */
  private async observeRunners(): Promise<boolean> {
    const held = this.slots.flatMap((runner, slot) => (runner && runner.state !== "exited" ? [slot] : []));
    if (!held.length) return false;
    let seen: Awaited<ReturnType<AgentPorts["runners"]["inspect"]>>;
    try {
      seen = await this.ports.runners.inspect(held);
    } catch (error) {
      this.ports.log.warn("could not observe the runners", { error: message(error) });
      return false;
    }
    let changed = false;
    for (const slot of held) {
      const now = seen.get(slot);
      if (now && this.observed(slot, now)) changed = true;
    }
    return changed;
  }

  /** Records what a slot's runner was seen doing; true when that changed. */
  private observed(slot: number, now: RunnerObservation): boolean {
    const runner = this.slots[slot];
    if (!runner) return false;
    const job = now.state === "running" ? now.job : null;
    if (now.state === runner.state && sameJob(job, runner.job)) return false;
    // A runner never goes back to listening: an ephemeral one serves one job.
    if (now.state === "listening" && runner.state === "running") return false;
    this.slots[slot] = {
      ...runner,
      state: now.state,
      job: now.state === "exited" ? runner.job : job,
      runningSince: now.state === "running" ? (runner.runningSince ?? this.now()) : runner.runningSince,
    };
    return true;
  }

  /**
   * Whether a slot's runner still listens, looked at again just before it is stopped: since the
   * step's observation, a heartbeat's round trip (the answer that asks the stop) or the previous
   * slot's stop may have let the forge hand it a job, which stopping it would kill. Unseen, it is
   * taken as still listening; if it cannot be looked at, it is left for the next step.
   */
  private async stillListening(slot: number): Promise<boolean> {
    let now: RunnerObservation | undefined;
    try {
      now = (await this.ports.runners.inspect([slot])).get(slot);
    } catch (error) {
      this.ports.log.warn("could not look at a runner before stopping it", { slot, error: message(error) });
      return false;
    }
    if (now === undefined) return true;
    if (this.observed(slot, now)) this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
    return this.slots[slot]?.state === "listening";
  }

  /**
   * Draining, released or held: a listener that has no job is stopped, so it takes none; it is
   * reported exited.
   */
  private async stopIdleListeners(): Promise<void> {
    for (const [slot, runner] of this.slots.entries()) {
      if (runner?.state !== "listening") continue;
      if (!(await this.stillListening(slot))) continue;
      try {
        await this.ports.runners.stop(slot);
        this.slots[slot] = { ...runner, state: "exited" };
        this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
      } catch (error) {
        this.ports.log.warn("could not stop an idle runner", { slot, error: message(error) });
      }
    }
  }

  private async drainGitLab(): Promise<void> {
    if (this.gitlabDrained || !this.gitlab) return;
    try {
      await this.ports.gitlab.drain();
      this.gitlabDrained = true;
      this.ports.log.info("gitlab-runner stopped: it finishes its jobs (SIGQUIT) and takes no new one");
    } catch (error) {
      this.ports.log.warn("could not stop gitlab-runner", { error: message(error) });
    }
  }

  /** When a running job's runner must be stopped: shortly before a spot action's deadline. */
  private stopAt(): number | null {
    const notice = this.interruption;
    if (!notice || notice.action === "rebalance") return null;
    const deadline = Date.parse(notice.time);
    return Number.isNaN(deadline) ? null : deadline - this.stopBeforeMs;
  }

  /**
   * A job still running this close to the deadline cannot finish: its runner is stopped, so the forge
   * records the failure now rather than after its own timeout.
   */
  private async enforceDeadline(): Promise<void> {
    const stopAt = this.stopAt();
    if (stopAt === null || this.now() < stopAt) return;
    for (const [slot, runner] of this.slots.entries()) {
      if (!runner || runner.state === "exited" || this.stoppedForDeadline.has(runner.runnerId)) continue;
      this.stoppedForDeadline.add(runner.runnerId);
      try {
        await this.ports.runners.stop(slot);
        this.slots[slot] = { ...runner, state: "exited" };
        this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
        this.ports.log.warn("stopped a runner before the interruption's deadline", {
          slot,
          runnerId: runner.runnerId,
          deadline: this.interruption?.time,
        });
        if (runner.state === "running") this.reportStop(slot, runner.runnerId, "interruption-deadline");
      } catch (error) {
        this.ports.log.warn("could not stop a runner before the deadline", { slot, error: message(error) });
      }
    }
    if (this.gitlab && !this.gitlabAborted) {
      this.gitlabAborted = true;
      try {
        const running = await this.ports.gitlab.runningJobs().catch(() => null);
        await this.ports.gitlab.abort();
        if (running?.length) this.reportStop(null, this.gitlabRunnerId, "interruption-deadline");
      } catch (error) {
        this.ports.log.warn("could not stop gitlab-runner's jobs before the deadline", {
          error: message(error),
        });
      }
    }
  }

  private async body(): Promise<HeartbeatBody> {
    const figures = await this.ports.store.measure().catch((error: unknown) => {
      this.ports.log.warn("could not measure the store", { error: message(error) });
      return null;
    });
    const gitlabJobs = this.gitlab
      ? await this.ports.gitlab.runningJobs().catch((error: unknown) => {
          this.ports.log.warn("could not list gitlab-runner's jobs", { error: message(error) });
          return null;
        })
      : null;
    const githubJobs = this.slots.flatMap((runner) =>
      runner?.state === "running" && runner.job ? [runner.job] : [],
    );
    const runningJobs = dedupe([...githubJobs, ...(gitlabJobs ?? [])]).slice(0, 64);
    const anyRunning = this.slots.some((runner) => runner?.state === "running");
    return {
      protocol: PROTOCOL_VERSION,
      instanceId: this.instanceId as string,
      runner:
        this.draining || this.interruption ? "draining" : runningJobs.length || anyRunning ? "busy" : "ready",
      slots: this.settings.slots,
      runningJobs,
      cacheKeys: (figures?.cacheKeys ?? []).slice(0, this.cacheKeyLimit),
      storeBytes: figures?.storeBytes ?? null,
      interruption: this.interruption,
      slotRunners: this.slots.flatMap((runner, slot) =>
        runner
          ? [
              {
                slot,
                runnerId: runner.runnerId,
                state: runner.state,
                ...(runner.state === "running" ? { job: runner.job } : {}),
              },
            ]
          : [],
      ),
      gitlabManager: this.gitlab
        ? { runnerId: await this.readGitLabRunnerId(), systemId: this.gitlab.systemId }
        : null,
      freeDiskBytes: figures?.freeDiskBytes ?? null,
      pushQueueDepth: figures?.pushQueueDepth ?? null,
      pushLagSeconds: figures?.pushLagSeconds ?? null,
      stoppedRunners: this.stoppedRunners.slice(0, STOPPED_RUNNERS_MAX),
      claiming: await this.claiming(),
    };
  }

  /** gitlab-runner's runner id, read until known (gitlab-runner writes it once it has registered). */
  private async readGitLabRunnerId(): Promise<number | null> {
    if (this.gitlabRunnerId !== null || !this.ports.gitlab.runnerId) return this.gitlabRunnerId;
    try {
      this.gitlabRunnerId = await this.ports.gitlab.runnerId();
    } catch (error) {
      this.ports.log.warn("could not read gitlab-runner's runner id", { error: message(error) });
    }
    return this.gitlabRunnerId;
  }

  /** Keeps a stop for the next heartbeat (the oldest are dropped past the protocol's 64). */
  private reportStop(slot: number | null, runnerId: number | null, reason: StoppedRunner["reason"]): void {
    this.stoppedRunners.push({ slot, runnerId, reason, at: new Date(this.now()).toISOString() });
    if (this.stoppedRunners.length > STOPPED_RUNNERS_MAX) this.stoppedRunners.shift();
    this.nextHeartbeatAt = Math.min(this.nextHeartbeatAt, this.elapsed());
  }

  /**
   * A GitHub job running longer than the pool allows is ended: its runner is stopped, so GitHub
   * records the job failed, and the stop is reported (a GitLab job is ended by GitLab itself, by the
   * runner's `maximum_timeout`).
   */
  private async enforceJobTime(): Promise<void> {
    const limit = this.settings.maxJobSeconds;
    if (!limit) return;
    for (const [slot, runner] of this.slots.entries()) {
      if (runner?.state !== "running" || runner.runningSince == null) continue;
      if (this.now() - runner.runningSince < limit * 1000) continue;
      try {
        await this.ports.runners.stop(slot);
      } catch (error) {
        this.ports.log.warn("could not stop a runner past the job time limit", {
          slot,
          error: message(error),
        });
        continue;
      }
      this.slots[slot] = { ...runner, state: "exited" };
      this.ports.log.warn("stopped a runner whose job ran past the pool's time limit", {
        slot,
        runnerId: runner.runnerId,
        job: runner.job ? `${runner.job.source}#${runner.job.id}` : null,
        maxJobSeconds: limit,
      });
      this.reportStop(slot, runner.runnerId, "max-job-time");
    }
  }

  /** Sends one heartbeat and acts on its answer; true when the control plane took it. */
  private async beat(): Promise<boolean> {
    const body = await this.body();
    const reportedStops = body.stoppedRunners.length;
    const reportedExited = new Set(
      body.slotRunners.filter((runner) => runner.state === "exited").map((runner) => runner.runnerId),
    );
    let answer: Awaited<ReturnType<AgentPorts["controlPlane"]["heartbeat"]>>;
    try {
      answer = await this.ports.controlPlane.heartbeat(body);
    } catch (error) {
      this.backOff("the control plane cannot be reached", { error: message(error) });
      return false;
    }
    if (answer.status === 413) {
      this.cacheKeyLimit = Math.floor(this.cacheKeyLimit / 2);
      this.backOff("the heartbeat was too large; sending fewer cache keys", { status: answer.status });
      return false;
    }
    if (answer.status === 400) {
      // A bug on one side: said once per heartbeat, and the heartbeats go on at their pace.
      this.ports.log.warn("the control plane refused the heartbeat as invalid", {
        code: refusalCode(answer.body),
      });
      this.nextHeartbeatAt = this.elapsed() + this.heartbeatMs;
      return false;
    }
    if (answer.status < 200 || answer.status >= 300) {
      this.backOff("the control plane did not take the heartbeat", {
        status: answer.status,
        code: refusalCode(answer.body),
      });
      return false;
    }
    this.failures = 0;
    this.answeredAt = this.elapsed();
    this.nextHeartbeatAt = this.elapsed() + this.heartbeatMs;
    // Heard: each stop is reported once.
    this.stoppedRunners.splice(0, reportedStops);
    const instructions = readAnswer(answer.body);
    this.protocol = instructions.protocol;
    // Reported exited and heard: the slot is free for its next runner.
    for (const [slot, runner] of this.slots.entries()) {
      if (runner?.state === "exited" && reportedExited.has(runner.runnerId)) this.slots[slot] = null;
    }
    if (instructions.drain && !this.drainRequested) {
      this.drainRequested = true;
      this.ports.log.info("the control plane asks the instance to drain");
      await this.stopIdleListeners();
      await this.drainGitLab();
    } else if (!instructions.drain && this.drainRequested && instructions.protocol >= 1) {
      this.drainRequested = false;
    }
    await this.followClaiming(instructions.release, instructions.hold, instructions.protocol);
    let started = false;
    for (const config of instructions.runnerConfigs) {
      if (await this.pickUp(config)) started = true;
    }
    // Runners started, or stopped by a drain: reported at once.
    if (started || this.slots.some((runner) => runner?.state === "exited"))
      this.nextHeartbeatAt = this.elapsed();
    return true;
  }

  /**
   * The release's instruction (protocol 2) and the hold's (protocol 3). Asked either, the agent stops
   * claiming and reports it at once. A release is called off by an answer of version 1 or later
   * without it, a hold by one without it; the agent claims again once neither stands. Both are read
   * before acting, so that one ending as the other begins never lets gitlab-runner start between.
   */
  private async followClaiming(release: boolean, hold: boolean, protocol: number): Promise<void> {
    const stoppedBefore = this.claimStopped;
    if (release !== this.releaseRequested && (release || protocol >= 1)) {
      this.releaseRequested = release;
      this.ports.log.info(
        release
          ? "the control plane is releasing the instance: claiming no job"
          : "the release was called off",
      );
    }
    if (hold !== this.holdRequested) {
      this.holdRequested = hold;
      this.ports.log.info(
        hold ? "the control plane holds this instance's slots: claiming no job" : "the hold was lifted",
      );
    }
    if (this.claimStopped && !stoppedBefore) {
      await this.stopClaiming();
      this.nextHeartbeatAt = this.elapsed();
    } else if (!this.claimStopped && stoppedBefore) {
      this.ports.log.info("claiming jobs again");
      await this.resumeGitLab();
      this.nextHeartbeatAt = this.elapsed();
    }
  }

  /**
   * A hold no answer has confirmed for `HOLD_LAPSE_MS` lapses: the agent claims again (the step's
   * `tendRelease` starts gitlab-runner). The next answer that says hold stops it again. A release does
   * not lapse: its instance may be on its way out.
   */
  private lapseHold(): void {
    if (!this.holdRequested || this.answeredAt === null) return;
    if (this.elapsed() - this.answeredAt < HOLD_LAPSE_MS) return;
    this.holdRequested = false;
    this.ports.log.warn("no answer from the control plane for 60 s: the hold lapses, claiming jobs again", {
      failures: this.failures,
    });
  }

  /** A release or a hold stops the instance claiming jobs. */
  private get claimStopped(): boolean {
    return this.releaseRequested || this.holdRequested;
  }

  /** Every step: a release or a hold stays (listeners stopped, gitlab-runner stopped), or is undone. */
  private async tendRelease(): Promise<void> {
    if (this.claimStopped) await this.stopClaiming();
    else await this.resumeGitLab();
  }

  /** No listener left, gitlab-runner stopped (idle, it ends at once; a running job finishes). */
  private async stopClaiming(): Promise<void> {
    await this.stopIdleListeners();
    if (!this.gitlab || this.gitlabStoppedForRelease || this.gitlabDrained) return;
    try {
      await this.ports.gitlab.stop();
      this.gitlabStoppedForRelease = true;
      this.ports.log.info("gitlab-runner stopped: claiming no job");
    } catch (error) {
      this.ports.log.warn("could not stop gitlab-runner to claim no job", { error: message(error) });
    }
  }

  /**
   * A release or hold called off (and none other standing): gitlab-runner starts again, with the pool
   * credentials read anew.
   */
  private async resumeGitLab(): Promise<void> {
    if (!this.gitlabStoppedForRelease || !this.gitlab || this.draining || this.claimStopped) return;
    try {
      const value = await this.ports.parameters.get(this.settings.poolCredentialsParameter);
      const credentials = value === null ? null : gitlabCredentials(value);
      if (credentials) await this.ports.gitlab.start(credentials, this.gitlab.systemId);
      this.gitlabStoppedForRelease = false;
    } catch (error) {
      // Tried again at the next step.
      this.ports.log.warn("could not start gitlab-runner again", { error: message(error) });
    }
  }

  /**
   * What the heartbeat says of claiming: false only once the agent has stopped (a release or a drain)
   * and nothing of it can take a job: no slot's runner listens, and gitlab-runner has ended.
   */
  private async claiming(): Promise<boolean> {
    if (!this.claimStopped && !this.draining) return true;
    if (this.slots.some((runner) => runner?.state === "listening")) return true;
    if (!this.gitlab) return false;
    if (!this.gitlabStoppedForRelease && !this.gitlabDrained) return true;
    try {
      return await this.ports.gitlab.active();
    } catch (error) {
      this.ports.log.warn("could not tell whether gitlab-runner still runs", { error: message(error) });
      return true;
    }
  }

  /** Starts the runner a config names, if its slot is free; true when it started. */
  private async pickUp(config: RunnerConfigInstruction): Promise<boolean> {
    if (this.draining || this.claimStopped || config.slot >= this.slots.length || this.slots[config.slot])
      return false;
    const ownPrefix = `${this.settings.runnerConfigPrefix.replace(/\/*$/, "/")}${this.instanceId}/`;
    if (!config.parameter.startsWith(ownPrefix)) {
      this.ports.log.warn("ignored a runner config outside this instance's parameters", {
        parameter: config.parameter,
      });
      return false;
    }
    let value: string | null;
    try {
      value = await this.ports.parameters.get(config.parameter);
    } catch (error) {
      // The same entry comes back in the next answer.
      this.ports.log.warn("could not read a runner config", {
        parameter: config.parameter,
        error: message(error),
      });
      return false;
    }
    if (value === null) {
      this.ports.log.info("a runner config was withdrawn before it was read", {
        parameter: config.parameter,
      });
      return false;
    }
    try {
      await this.ports.runners.start(config.slot, value);
    } catch (error) {
      this.ports.log.warn("could not start a runner", { slot: config.slot, error: message(error) });
      return false;
    }
    this.slots[config.slot] = {
      runnerId: config.runnerId,
      parameter: config.parameter,
      state: "listening",
      job: null,
    };
    this.ports.log.info("runner started", { slot: config.slot, runnerId: config.runnerId });
    return true;
  }

  /** Waits longer after each heartbeat not taken (5 s, doubling, at most `maxBackoffSeconds`). */
  private backOff(reason: string, fields: Record<string, unknown>): void {
    this.failures += 1;
    const wait = Math.min(this.maxBackoffMs, 5000 * 2 ** Math.min(this.failures - 1, 20));
    this.nextHeartbeatAt = this.elapsed() + wait;
    this.ports.log.warn(reason, { ...fields, failures: this.failures, retryInSeconds: wait / 1000 });
  }
}

export function createAgent(ports: AgentPorts, settings: AgentSettings): Agent {
  return new Agent(ports, settings);
}

/** The pool credentials parameter's GitLab part (`{ "gitlab": { url, token } | null }`), or null. */
function gitlabCredentials(value: string): GitLabCredentials | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    // Never the value itself in the error: it holds a token.
    throw new Error("the pool credentials are not JSON");
  }
  const gitlab = (parsed as { gitlab?: { url?: unknown; token?: unknown } | null } | null)?.gitlab;
  if (!gitlab) return null;
  if (typeof gitlab.url !== "string" || typeof gitlab.token !== "string" || !gitlab.token) {
    throw new Error("the pool credentials' gitlab entry needs a url and a token");
  }
  return { url: gitlab.url, token: gitlab.token };
}

/** The slots a memory holds, each checked; anything unreadable is left out. */
function readSavedSlots(saved: unknown, slots: number): Array<[number, SlotRunner]> {
  const list = (saved as { slots?: unknown } | null)?.slots;
  if (!Array.isArray(list)) return [];
  return list.slice(0, slots).flatMap((entry, slot): Array<[number, SlotRunner]> => {
    const runner = entry as Partial<SlotRunner> | null;
    if (
      !runner ||
      !Number.isSafeInteger(runner.runnerId) ||
      (runner.runnerId as number) <= 0 ||
      typeof runner.parameter !== "string" ||
      !["listening", "running", "exited"].includes(runner.state as string)
    ) {
      return [];
    }
    const job = runner.job;
    const validJob =
      job && (job.source === "github" || job.source === "gitlab") && /^\d{1,20}$/.test(String(job.id))
        ? { source: job.source, id: String(job.id) }
        : null;
    return [
      [
        slot,
        {
          runnerId: runner.runnerId as number,
          parameter: runner.parameter,
          state: runner.state as SlotRunner["state"],
          job: validJob,
          runningSince: Number.isSafeInteger(runner.runningSince) ? (runner.runningSince as number) : null,
        },
      ],
    ];
  });
}

function sameJob(a: JobKey | null, b: JobKey | null): boolean {
  return a?.source === b?.source && a?.id === b?.id;
}

function dedupe(jobs: JobKey[]): JobKey[] {
  const seen = new Set<string>();
  return jobs.filter((job) => {
    const key = `${job.source}#${job.id}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
