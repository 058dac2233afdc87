import {
  type AgentPorts,
  createAgent,
  type Agent as InstanceAgent,
  type RunnerObservation,
} from "@hearth/agent";
import type { Clock } from "@hearth/core/clock";
import type { Interruption } from "@hearth/core/instances";
import { cacheKeyOf, isTerminal, type Job, jobKeyString, type Source } from "@hearth/core/jobs";
import type { Ledger } from "@hearth/core/ledger";
import { type PoolConfig, routeJob } from "@hearth/core/pools";
import type { SimulatedFleet, SimulatedInstance } from "@hearth/core/simulation/fleet";
import { SIMULATED_RUNNER_CONFIG_PREFIX } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  type ForgeRequest,
  type ForgeSecrets,
  type GitHubAction,
  type GitLabStatus,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  type RunInfo,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import { claimQueuedJobs, Random, rememberKey } from "@hearth/core/simulation/rules";
import { BINARY_CACHE_WINDOW_SECONDS } from "@hearth/core/stores";
import type { Logger } from "../log";

/**
 * The runners of local mode, and the forge around them. Each simulated instance runs Hearth's own
 * agent (`@hearth/agent`, the logic the instances run) against simulated ports: IMDS answers with the
 * instance's id and its spot notice, heartbeats go to the real `/agent/heartbeat` route, parameters
 * are the simulated fleet's (a runner config is read only by its instance), and runners start at
 * the simulated GitHub, which checks that the config was minted for that instance and slot; the pool's
 * credentials make the instance a manager of its pool's GitLab runner. A
 * slot listens for a GitHub job only while its runner is started and idle, and for a GitLab job only
 * while the instance is a registered manager. Listening slots claim the oldest queued job their pool
 * can run, each onto a listening slot the forge picks at random (`claimQueuedJobs`, as GitLab and
 * GitHub hand jobs to polling runners), and the forge sends the
 * `running`/`completed` webhooks a real forge would. A job runs for the duration the demo gave it
 * (warm or cold, by the instance's store), 60 s by default, unless a `completed` webhook ends it first.
 * A job cold on its store whose key an instance of its pool finished within the binary cache's window
 * substitutes its closure from the pool's cache instead: min(cold, warm + 60 s), the fleet model's rule.
 *
 * Like the runner image, the simulated agents report no cache keys (the image writes no
 * `cache-keys.json`): what Hearth knows of their stores it learns from the jobs that completed on them,
 * by the path it takes on AWS.
 */

/** What the demo tells the simulation about a job before queueing it. */
export interface SimulatedJob {
  job: ForgeJob;
  warmSeconds: number;
  coldSeconds: number;
}

interface Slot {
  key: string;
  cacheKey: string;
  job: ForgeJob;
  startedAt: string;
  createdAt: string;
  /** Epoch ms at which the job finishes. */
  endsAt: number;
  cancel: () => void;
}

/** A slot's GitHub runner, as the machine runs it: `done` once it stopped or served its job. */
interface SlotRunner {
  runnerId: number;
  name: string;
  done: boolean;
}

/** A simulated instance: what runs on its slots, and its agent. */
interface Agent {
  instance: SimulatedInstance;
  slots: Array<Slot | null>;
  /** Each slot's GitHub runner (one ephemeral runner at a time), or null. */
  github: Array<SlotRunner | null>;
  /** The pool's GitLab runner this instance is a manager of, once gitlab-runner started. */
  gitlab: { token: string; systemId: string; runnerId: number } | null;
  /** gitlab-runner got SIGQUIT: it takes no new job. */
  gitlabDraining: boolean;
  /** gitlab-runner was stopped for a release: it takes no job until started again. */
  gitlabStopped: boolean;
  /** The spot notice IMDS shows. */
  interruption: Interruption | null;
  agent: InstanceAgent;
  /** Faults injected into this machine's agent (`controlAgent`). */
  fault: AgentFault;
}

/**
 * An agent's injected faults: stopped (the process died; the machine and its runners run on), or
 * heartbeats that reach the control plane at most once per `heartbeatEverySeconds` (the others are
 * lost on the way, as on a congested network or an overloaded machine, and the agent backs off).
 */
export interface AgentFault {
  stopped: boolean;
  heartbeatEverySeconds: number | null;
  /** When the last heartbeat got through (epoch ms). */
  lastDeliveredAt: number | null;
}

/** What `controlAgent` changes; what is absent stays as it is. */
export interface AgentFaultChange {
  stopped?: boolean;
  heartbeatEverySeconds?: number | null;
}

/** A simulated instance's disk: the stage's default root volume (`fleet.rootVolumeGiB`, 100 GiB). */
const SIMULATED_DISK_BYTES = 100 * 2 ** 30;
/** What the system (the image's own closure, logs) takes of it, before any job's store paths. */
const SIMULATED_SYSTEM_BYTES = 8 * 2 ** 30;

export interface SimulatedRunnersOptions {
  fleet: SimulatedFleet;
  ledger: Ledger;
  pools: readonly PoolConfig[];
  clock: Clock;
  secrets: ForgeSecrets;
  /** Sends a request to Hearth's own HTTP app (as GitLab, GitHub or an agent would). */
  send: (
    path: string,
    init: { headers: Record<string, string>; body: string },
  ) => Promise<{ status: number; body: string }>;
  /** The simulated forges' runners: they check each runner's config and each manager. */
  forge: SimulatedForgeRunners;
  /** An SSM GetParameter by an instance: the value only if the parameter is that instance's. */
  readRunnerConfig: (instanceId: string, parameter: string) => string | undefined;
  log: Logger;
  /**
   * Something to keep changed: `state` (stores, slots, webhooks owed) or `jobs` (the descriptions).
   * Local mode writes them to `--data` (see server.ts).
   */
  changed?: (what: "state" | "jobs") => void;
  heartbeatSeconds?: number;
  /** Jobs the demo described: the simulated forges track them (their runs, for retries). */
  described?: (jobs: readonly SimulatedJob[]) => void;
  /** How often idle slots look for work (GitLab Runner's `check_interval` defaults to 3 s). */
  pollSeconds?: number;
  /** Seeds the forge's choice of which listening slot gets a job. */
  seed?: number;
}

const DEFAULT_SECONDS = 60;
/** What substituting a closure from the binary cache adds to a warm run (the fleet model's default). */
const SUBSTITUTE_SECONDS = 60;

/** The pool credentials parameter, as infra names it (`parameterPaths(stage).poolCredentials`). */
const credentialsParameter = (pool: string) => `/hearth/local/pools/${pool}/credentials`;
/**
 * Jobs described and not yet finished, at most: each is a few hundred bytes kept in memory and in
 * `--data`. A description is dropped once its job finishes.
 */
export const MAX_DESCRIBED_JOBS = 10_000;

type SavedSlot = Omit<Slot, "cancel">;

/** The runners' memory across a restart: stores, described jobs, and what each slot was running. */
export interface RunnersSnapshot {
  stores: Record<string, string[]>;
  jobs: SimulatedJob[];
  slots: Record<string, Array<SavedSlot | null>>;
  /** Jobs whose machine went away, whose failure the forge has not reported yet. */
  lost?: Array<SavedSlot & { instanceId: string }>;
  /** Each pool's binary cache: when an instance of the pool last finished each key (epoch ms). */
  binaryCache?: Record<string, Record<string, number>>;
  /** Each instance's slot runners and GitLab registration. */
  agents?: Record<
    string,
    Pick<Agent, "github" | "gitlab"> & { gitlabDraining?: boolean; gitlabStopped?: boolean }
  >;
}

export class SimulatedRunners {
  private readonly agents = new Map<string, Agent>();
  /** Stores outlive stops: a resumed warm-pool instance keeps what it built. */
  private readonly stores = new Map<string, string[]>();
  /** Per pool, what its instances pushed to the binary cache: key → when last finished (epoch ms). */
  private readonly binaryCache = new Map<string, Map<string, number>>();
  private readonly jobs = new Map<string, SimulatedJob>();
  private readonly claimed = new Set<string>();
  private stopPolling: () => void = () => {};
  /** Slots to pick up again when their instance's agent starts after a restart. */
  private restoredSlots = new Map<string, RunnersSnapshot["slots"][string]>();
  private restoredAgents = new Map<string, NonNullable<RunnersSnapshot["agents"]>[string]>();
  private lost: Array<SavedSlot & { instanceId: string }> = [];
  private stopped = false;
  /**
   * Agents restored before the server listens cannot reach it, as real ones could not reach a
   * control plane that is down: they heartbeat once the runners start.
   */
  private started = false;
  private dispatching: Promise<void> | null = null;
  private readonly random: Random;

  constructor(private readonly options: SimulatedRunnersOptions) {
    this.random = Random.stream(options.seed ?? 1, "claims");
    options.fleet.subscribe({
      inService: (instance) => this.startAgent(instance),
      leaving: (instance, how) => this.stopAgent(instance, how),
      interrupted: async (instance, notice) => {
        const agent = this.agents.get(instance.id);
        if (!agent) return;
        // IMDS shows the notice; the agent's next step (now) drains and reports it.
        agent.interruption = notice;
        if (this.started && !agent.fault.stopped) await agent.agent.tick();
      },
    });
  }

  snapshot(): RunnersSnapshot {
    return {
      stores: Object.fromEntries(this.stores),
      binaryCache: Object.fromEntries(
        [...this.binaryCache].map(([pool, keys]) => [pool, Object.fromEntries(keys)]),
      ),
      jobs: this.describedJobs(),
      lost: [...this.lost],
      agents: Object.fromEntries(
        [...this.agents].map(([id, agent]) => [
          id,
          {
            github: [...agent.github],
            gitlab: agent.gitlab,
            gitlabDraining: agent.gitlabDraining,
            gitlabStopped: agent.gitlabStopped,
          },
        ]),
      ),
      slots: Object.fromEntries(
        [...this.agents].map(([id, agent]) => [
          id,
          agent.slots.map((slot) =>
            slot
              ? {
                  key: slot.key,
                  cacheKey: slot.cacheKey,
                  job: slot.job,
                  startedAt: slot.startedAt,
                  createdAt: slot.createdAt,
                  endsAt: slot.endsAt,
                }
              : null,
          ),
        ]),
      ),
    };
  }

  /** The descriptions of jobs not finished yet (kept apart from the rest: they change less often). */
  describedJobs(): SimulatedJob[] {
    return [...this.jobs.values()];
  }

  /** Called before the fleet restores, so that restarted agents find their stores and slots. */
  restore(snapshot: RunnersSnapshot): void {
    for (const [id, keys] of Object.entries(snapshot.stores)) this.stores.set(id, keys);
    for (const [pool, keys] of Object.entries(snapshot.binaryCache ?? {})) {
      this.binaryCache.set(pool, new Map(Object.entries(keys)));
    }
    this.describe(snapshot.jobs.slice(0, MAX_DESCRIBED_JOBS));
    for (const [id, slots] of Object.entries(snapshot.slots)) this.restoredSlots.set(id, slots);
    for (const [id, agent] of Object.entries(snapshot.agents ?? {})) this.restoredAgents.set(id, agent);
    this.lost.push(...(snapshot.lost ?? []));
  }

  /**
   * Once the fleet is restored: slots whose instance is not running any more lost their jobs while
   * the process was down, and failures the forge still owes are reported now.
   */
  async afterRestore(): Promise<void> {
    for (const [instanceId, slots] of this.restoredSlots) {
      for (const slot of slots) if (slot) this.lost.push({ ...slot, instanceId });
    }
    this.restoredSlots.clear();
    // Instances that are not running any more: their runners stopped with them.
    for (const agent of this.restoredAgents.values()) {
      for (const runner of agent.github) if (runner) this.options.forge.github.stopRunner(runner.runnerId);
    }
    this.restoredAgents.clear();
    await this.reportLost();
  }

  /**
   * Durations (and the forge's view) of jobs the demo is about to queue. False, and nothing kept,
   * when they would take the table past `MAX_DESCRIBED_JOBS`.
   */
  describe(jobs: readonly SimulatedJob[]): boolean {
    const added = jobs.filter((job) => !this.jobs.has(jobKeyString(job.job))).length;
    if (this.jobs.size + added > MAX_DESCRIBED_JOBS) return false;
    for (const job of jobs) this.jobs.set(jobKeyString(job.job), job);
    this.options.described?.(jobs);
    if (jobs.length) this.options.changed?.("jobs");
    return true;
  }

  private forget(key: string): void {
    if (this.jobs.delete(key)) this.options.changed?.("jobs");
  }

  /** The job's tags as the GitLab API would give them (local mode answers `GET …/jobs/:id` with it). */
  tagsOf(jobId: string): string[] | undefined {
    return this.jobs.get(`gitlab#${jobId}`)?.job.labels;
  }

  start(): void {
    this.started = true;
    for (const agent of this.agents.values()) if (!agent.fault.stopped) agent.agent.run();
    const poll = () => {
      if (this.stopped) return;
      this.stopPolling = this.options.clock.after((this.options.pollSeconds ?? 3) * 1000, async () => {
        await this.dispatch();
        poll();
      });
    };
    poll();
  }

  stop(): void {
    this.stopped = true;
    this.stopPolling();
    for (const agent of this.agents.values()) {
      agent.agent.stop();
      for (const slot of agent.slots) slot?.cancel();
    }
  }

  /** Hands queued jobs to free slots: oldest job first, to a listening slot of its pool. */
  dispatch(): Promise<void> {
    this.dispatching ??= this.dispatchOnce().finally(() => {
      this.dispatching = null;
    });
    return this.dispatching;
  }

  private async dispatchOnce(): Promise<void> {
    await this.releaseFinishedElsewhere();
    const serving = (agent: Agent) => !agent.interruption && agent.instance.lifecycle === "in-service";
    // One entry per free slot: which jobs it can take depends on its runners.
    const listening = [...this.agents.values()]
      .filter(serving)
      .flatMap((agent) =>
        agent.slots.flatMap((slot, index) => (slot ? [] : [{ runner: { agent, index }, free: 1 }])),
      );
    if (!listening.length) return;
    const queued: Array<{ job: Job; pool: string }> = [];
    for (const job of await this.options.ledger.queued()) {
      if (this.claimed.has(jobKeyString(job))) continue;
      const route = routeJob(job, this.options.pools);
      if ("pool" in route) queued.push({ job, pool: route.pool });
    }
    const claims = claimQueuedJobs(
      queued,
      listening,
      this.random,
      (job, { agent, index }) => agent.instance.pool === job.pool && this.listensFor(agent, index, job.job),
    );
    for (const { job, runner } of claims) {
      const { agent, index } = runner;
      // The agent may have stopped or been warned while an earlier claim's webhook was sent.
      if (this.agents.get(agent.instance.id) !== agent || !serving(agent) || agent.slots[index]) continue;
      if (!this.listensFor(agent, index, job.job)) continue;
      const forgeJob = this.forgeJobOf(job.job);
      const cacheKey = cacheKeyOf({ project: forgeJob.project, name: job.job.name });
      await this.claim(agent, index, job.job, forgeJob, cacheKey);
    }
  }

  /**
   * Whether a free slot has a runner the forge would hand this job to: for GitHub, the slot's own
   * started, idle runner; for GitLab, the instance registered as a manager of a runner whose tags
   * cover the job's.
   */
  private listensFor(agent: Agent, index: number, job: Job): boolean {
    if (job.source === "github") {
      const runner = agent.github[index];
      return Boolean(runner && !runner.done);
    }
    if (!agent.gitlab || agent.gitlabDraining || agent.gitlabStopped) return false;
    const tags = job.labelsKnown ? job.labels : [];
    return this.options.forge.gitlab.mayTakeJob(agent.gitlab.token, agent.gitlab.systemId, tags).ok;
  }

  /** The runner a slot's job runs on, as the forge's webhooks name it. */
  private runnerFor(agent: Agent, index: number, source: Source): { runnerName: string; runnerId?: number } {
    const github = agent.github[index];
    if (source === "github" && github) return { runnerName: github.name, runnerId: github.runnerId };
    if (source === "gitlab" && agent.gitlab) {
      return { runnerName: agent.gitlab.systemId, runnerId: agent.gitlab.runnerId };
    }
    return { runnerName: `${agent.instance.id}-${index + 1}` };
  }

  /** A slot's job ended: its ephemeral GitHub runner is done (GitHub deletes it), and exits. */
  private runnerDone(agent: Agent, index: number, source: Source): void {
    const runner = agent.github[index];
    if (source !== "github" || !runner || runner.done) return;
    this.options.forge.github.finishJob(runner.runnerId);
    agent.github[index] = { ...runner, done: true };
    this.options.changed?.("state");
  }

  /** A slot's job is lost with its runner (stopped before a deadline, or gitlab-runner aborted). */
  private loseSlot(agent: Agent, index: number): void {
    const slot = agent.slots[index];
    if (!slot) return;
    slot.cancel();
    agent.slots[index] = null;
    this.claimed.delete(slot.key);
    const { cancel: _cancel, ...saved } = slot;
    this.lost.push({ ...saved, instanceId: agent.instance.id });
    this.options.changed?.("state");
    void this.reportLost();
  }

  /** A `completed` webhook may end a job before its duration; its slot is free again. */
  private async releaseFinishedElsewhere(): Promise<void> {
    for (const agent of this.agents.values()) {
      for (const [index, slot] of agent.slots.entries()) {
        if (!slot) continue;
        const [source, id] = slot.key.split("#") as [Source, string];
        const job = await this.options.ledger.get({ source, id });
        if (job && isTerminal(job.status)) {
          slot.cancel();
          agent.slots[index] = null;
          this.runnerDone(agent, index, source);
          this.claimed.delete(slot.key);
          this.forget(slot.key);
          if (job.status === "completed") this.remember(agent, slot.cacheKey);
          this.options.changed?.("state");
          await this.report(agent);
        }
      }
    }
  }

  /** The store now holds this job's closure: most recent first, least recent forgotten. */
  private remember(agent: Agent, cacheKey: string): void {
    // A copy: a snapshot taken earlier may hold the old list.
    const keys = [...(this.stores.get(agent.instance.id) ?? [])];
    rememberKey(keys, cacheKey);
    this.stores.set(agent.instance.id, keys);
    // The image pushes what it built to the stage's binary cache, for every instance of the pool.
    const pushed = this.binaryCache.get(agent.instance.pool) ?? new Map<string, number>();
    pushed.set(cacheKey, this.options.clock.now());
    this.binaryCache.set(agent.instance.pool, pushed);
    this.options.changed?.("state");
  }

  private forgeJobOf(job: Job): ForgeJob {
    const described = this.jobs.get(jobKeyString(job))?.job;
    if (described) return described;
    // The ledger names a job "<workflow or stage> / <name>"; the forge sends the parts separately.
    const name = job.name.includes(" / ") ? job.name.slice(job.name.indexOf(" / ") + 3) : job.name;
    return {
      source: job.source,
      id: job.id,
      project: job.project || "local/demo",
      projectId: job.projectId ?? "1",
      pipelineId: job.pipelineId || "1",
      name,
      labels: job.labels,
    };
  }

  private async claim(
    agent: Agent,
    index: number,
    job: Job,
    forgeJob: ForgeJob,
    cacheKey: string,
  ): Promise<void> {
    const { clock } = this.options;
    const key = jobKeyString(job);
    if (job.source === "github") {
      // The forge hands the job to the slot's runner, and only to a runner it knows started.
      const runner = agent.github[index];
      if (!runner) return;
      const taken = this.options.forge.github.takeJob(runner.runnerId, { source: job.source, id: job.id });
      if (!taken.ok) {
        this.options.log.warn("simulated GitHub refused the runner a job", { reason: taken.message });
        return;
      }
    }
    const described = this.jobs.get(key);
    const store = this.stores.get(agent.instance.id) ?? [];
    const warm = store.includes(cacheKey);
    const pushedAt = this.binaryCache.get(agent.instance.pool)?.get(cacheKey);
    const cached = pushedAt !== undefined && clock.now() - pushedAt <= BINARY_CACHE_WINDOW_SECONDS * 1000;
    const seconds = !described
      ? DEFAULT_SECONDS
      : warm
        ? described.warmSeconds
        : cached
          ? Math.min(described.coldSeconds, described.warmSeconds + SUBSTITUTE_SECONDS)
          : described.coldSeconds;
    const startedAt = new Date(clock.now()).toISOString();
    const createdAt = job.queuedAt ?? startedAt;
    this.claimed.add(key);
    this.occupy(agent, index, {
      key,
      cacheKey,
      job: forgeJob,
      startedAt,
      createdAt,
      endsAt: clock.now() + seconds * 1000,
    });
    await this.forge(forgeJob, "started", {
      ...this.runnerFor(agent, index, job.source),
      startedAt,
      createdAt,
    });
    await this.report(agent);
  }

  /**
   * Injects faults into an instance's agent (local mode's `PUT /sim/fleet/instances/:id/agent`): its
   * process stopped or started again, its heartbeats slowed or back to normal. Undefined for an
   * instance with no agent (not in service).
   */
  controlAgent(
    instanceId: string,
    change: AgentFaultChange,
  ): Omit<AgentFault, "lastDeliveredAt"> | undefined {
    const machine = this.agents.get(instanceId);
    if (!machine) return undefined;
    if (change.heartbeatEverySeconds !== undefined) {
      machine.fault.heartbeatEverySeconds = change.heartbeatEverySeconds;
    }
    if (change.stopped === true && !machine.fault.stopped) {
      machine.fault.stopped = true;
      machine.agent.stop();
    } else if (change.stopped === false && machine.fault.stopped) {
      machine.fault.stopped = false;
      if (this.started && !this.stopped) machine.agent.run();
    }
    return { stopped: machine.fault.stopped, heartbeatEverySeconds: machine.fault.heartbeatEverySeconds };
  }

  /** Something changed on the machine: its agent reports at once, as the real one does. */
  private async report(agent: Agent): Promise<void> {
    if (!this.started || this.stopped || this.agents.get(agent.instance.id) !== agent) return;
    // A dead agent reports nothing; the machine's runners go on without it.
    if (agent.fault.stopped) return;
    await agent.agent.tick();
    await agent.agent.heartbeatOnce();
  }

  /** Puts a job in a slot until it ends (or a `completed` webhook frees the slot first). */
  private occupy(agent: Agent, index: number, slot: Omit<Slot, "cancel">): void {
    const { clock } = this.options;
    const runner = this.runnerFor(agent, index, slot.job.source);
    const cancel = clock.after(Math.max(0, slot.endsAt - clock.now()), async () => {
      if (agent.slots[index]?.key !== slot.key) return;
      const finishedAt = new Date(clock.now()).toISOString();
      // The forge hears of it before the slot is free: a restart in between finishes it again
      // (a repeated webhook changes nothing) rather than leaving the job running for ever.
      await this.forge(slot.job, "done", {
        ...runner,
        startedAt: slot.startedAt,
        finishedAt,
        createdAt: slot.createdAt,
        conclusion: "success",
      });
      if (agent.slots[index]?.key === slot.key) {
        agent.slots[index] = null;
        this.runnerDone(agent, index, slot.job.source);
      }
      this.claimed.delete(slot.key);
      this.forget(slot.key);
      this.remember(agent, slot.cacheKey);
      await this.report(agent);
    });
    agent.slots[index] = { ...slot, cancel };
    this.options.changed?.("state");
  }

  private async forge(job: ForgeJob, phase: "started" | "done" | "lost", run: RunInfo): Promise<void> {
    const now = new Date(this.options.clock.now());
    let request: ForgeRequest;
    if (job.source === "github") {
      const action: GitHubAction = phase === "started" ? "in_progress" : "completed";
      request = githubDelivery(
        workflowJobPayload(job, action, {
          ...run,
          conclusion: phase === "lost" ? "failure" : run.conclusion,
        }),
        this.options.secrets,
      );
    } else {
      const status: GitLabStatus = phase === "started" ? "running" : phase === "done" ? "success" : "failed";
      request = gitlabDelivery(
        jobHookPayload(job, status, { ...run, failureReason: "runner_system_failure" }),
        this.options.secrets,
        now,
      );
    }
    const { status } = await this.options.send(request.path, {
      headers: request.headers,
      body: request.body,
    });
    if (status >= 300)
      this.options.log.warn("simulated forge webhook refused", { path: request.path, status });
  }

  private async startAgent(instance: SimulatedInstance): Promise<void> {
    const pool = this.options.pools.find((p) => p.name === instance.pool);
    const slots = pool?.slotsPerInstance ?? 2;
    const restored = this.restoredAgents.get(instance.id);
    this.restoredAgents.delete(instance.id);
    const machine = {
      instance,
      slots: Array.from({ length: slots }, () => null),
      github: Array.from({ length: slots }, (_, index) => restored?.github[index] ?? null),
      gitlab: restored?.gitlab ?? null,
      gitlabDraining: restored?.gitlabDraining ?? false,
      gitlabStopped: restored?.gitlabStopped ?? false,
      interruption: null,
      fault: { stopped: false, heartbeatEverySeconds: null, lastDeliveredAt: null },
    } as Omit<Agent, "agent"> as Agent;
    const held = machine.github.map((runner, index) => {
      if (!runner) return null;
      const job = this.restoredSlots.get(instance.id)?.[index]?.job;
      return runner.done
        ? { runnerId: runner.runnerId, parameter: "", state: "exited" as const, job: null }
        : job?.source === "github"
          ? {
              runnerId: runner.runnerId,
              parameter: "",
              state: "running" as const,
              job: { source: job.source, id: job.id },
            }
          : { runnerId: runner.runnerId, parameter: "", state: "listening" as const, job: null };
    });
    machine.agent = createAgent(this.agentPorts(machine, pool?.name ?? instance.pool), {
      slots,
      poolCredentialsParameter: credentialsParameter(instance.pool),
      runnerConfigPrefix: SIMULATED_RUNNER_CONFIG_PREFIX,
      heartbeatSeconds: this.options.heartbeatSeconds ?? 15,
      held,
    });
    this.agents.set(instance.id, machine);
    for (const [index, slot] of (this.restoredSlots.get(instance.id) ?? []).entries()) {
      if (!slot || index >= machine.slots.length) continue;
      this.claimed.add(slot.key);
      this.occupy(machine, index, slot);
    }
    this.restoredSlots.delete(instance.id);
    // Restored before the server listens, it runs once the runners start (see `started`).
    if (this.started) {
      machine.agent.run();
      await machine.agent.heartbeatOnce();
    }
  }

  /** The agent's world on a simulated instance: IMDS, the control plane, parameters, runners, store. */
  private agentPorts(machine: Agent, pool: string): AgentPorts {
    const { forge, log } = this.options;
    const instanceId = machine.instance.id;
    return {
      imds: {
        instanceId: async () => instanceId,
        region: async () => "local",
        spotAction: async () => {
          const notice = machine.interruption;
          return notice && notice.action !== "rebalance"
            ? { action: notice.action, time: notice.time }
            : null;
        },
        rebalanceRecommendation: async () =>
          machine.interruption?.action === "rebalance" ? { noticeTime: machine.interruption.time } : null,
      },
      controlPlane: {
        heartbeat: async (body) => {
          const { fault } = machine;
          const now = this.options.clock.now();
          if (
            fault.heartbeatEverySeconds !== null &&
            fault.lastDeliveredAt !== null &&
            now - fault.lastDeliveredAt < fault.heartbeatEverySeconds * 1000
          ) {
            throw new Error("the heartbeat was lost on the way (a slowed agent)");
          }
          fault.lastDeliveredAt = now;
          const answer = await this.options.send("/agent/heartbeat", {
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${machine.instance.token}`,
            },
            body: JSON.stringify(body),
          });
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(answer.body);
          } catch {}
          return { status: answer.status, body: parsed };
        },
      },
      parameters: {
        get: async (name) => {
          if (name === credentialsParameter(pool)) {
            const token = forge.gitlab.tokenOf(pool);
            return JSON.stringify({ gitlab: token ? { url: "local", token } : null });
          }
          // The simulated IAM: an instance reads only the configs handed to it.
          return this.options.readRunnerConfig(instanceId, name) ?? null;
        },
      },
      runners: {
        start: async (slot, config) => {
          if (machine.slots[slot]) throw new Error(`slot ${slot} still runs a job`);
          const started = forge.github.startRunner({ encodedJitConfig: config, instanceId, slot });
          if (!started.ok) throw new Error(`the simulated GitHub refused the config: ${started.message}`);
          machine.github[slot] = { runnerId: started.runner.id, name: started.runner.name, done: false };
          this.options.changed?.("state");
        },
        stop: async (slot) => {
          const runner = machine.github[slot];
          if (!runner || runner.done) return;
          forge.github.stopRunner(runner.runnerId);
          machine.github[slot] = { ...runner, done: true };
          if (machine.slots[slot]?.job.source === "github") this.loseSlot(machine, slot);
          this.options.changed?.("state");
        },
        inspect: async (slots) =>
          new Map<number, RunnerObservation>(
            slots.map((slot) => {
              const runner = machine.github[slot];
              const job = machine.slots[slot]?.job;
              if (!runner || runner.done) return [slot, { state: "exited" as const }];
              if (job?.source === "github") {
                return [slot, { state: "running" as const, job: { source: job.source, id: job.id } }];
              }
              return [slot, { state: "listening" as const }];
            }),
          ),
      },
      gitlab: {
        start: async (credentials, systemId) => {
          const verified = forge.gitlab.verify(credentials.token, systemId);
          if (!verified.ok) throw new Error(`the simulated GitLab refused the token: ${verified.message}`);
          machine.gitlab = { token: credentials.token, systemId, runnerId: verified.value.id };
          machine.gitlabStopped = false;
          this.options.changed?.("state");
        },
        drain: async () => {
          machine.gitlabDraining = true;
          this.options.changed?.("state");
        },
        abort: async () => {
          for (const [index, slot] of machine.slots.entries()) {
            if (slot?.job.source === "gitlab") this.loseSlot(machine, index);
          }
        },
        // Stopped for a release: it takes no job; it ends once its running jobs have finished.
        stop: async () => {
          machine.gitlabStopped = true;
          this.options.changed?.("state");
        },
        active: async () =>
          !(machine.gitlabStopped || machine.gitlabDraining) ||
          machine.slots.some((slot) => slot?.job.source === "gitlab"),
        runningJobs: async () =>
          machine.slots.flatMap((slot) =>
            slot?.job.source === "gitlab" ? [{ source: "gitlab" as const, id: slot.job.id }] : [],
          ),
      },
      store: {
        measure: async () => {
          const keys = this.stores.get(instanceId) ?? [];
          const storeBytes = keys.length * 2_000_000_000;
          return {
            storeBytes,
            // The default root volume, less the system's share.
            freeDiskBytes: Math.max(0, SIMULATED_DISK_BYTES - SIMULATED_SYSTEM_BYTES - storeBytes),
            // The simulated binary cache takes a job's closure the moment the job finishes.
            pushQueueDepth: 0,
            pushLagSeconds: 0,
            // As the runner image's agent: no job hook writes cache-keys.json.
            cacheKeys: [],
          };
        },
      },
      clock: this.options.clock,
      // What the agent notes on every job would drown local mode's output; its warnings are kept.
      log: {
        info() {},
        warn: (message, fields) => log.warn(`agent of ${instanceId}: ${message}`, fields),
      },
    };
  }

  private async stopAgent(instance: SimulatedInstance, how: "stopped" | "terminated"): Promise<void> {
    const agent = this.agents.get(instance.id);
    if (!agent) return;
    this.agents.delete(instance.id);
    agent.agent.stop();
    // Its runners stop with the machine; the control plane deletes them (a resume gets new ones).
    for (const runner of agent.github) if (runner) this.options.forge.github.stopRunner(runner.runnerId);
    for (const slot of agent.slots) {
      if (!slot) continue;
      slot.cancel();
      this.claimed.delete(slot.key);
      const { cancel: _cancel, ...saved } = slot;
      this.lost.push({ ...saved, instanceId: instance.id });
    }
    if (how === "terminated") this.stores.delete(instance.id);
    this.options.changed?.("state");
    await this.reportLost();
  }

  /** The machine went away under these jobs: the forge sees their runners fail. */
  private async reportLost(): Promise<void> {
    while (this.lost.length) {
      const slot = this.lost[0] as SavedSlot & { instanceId: string };
      const finishedAt = new Date(this.options.clock.now()).toISOString();
      await this.forge(slot.job, "lost", { ...slot, runnerName: slot.instanceId, finishedAt });
      // Removed once reported (a concurrent report may have taken it already).
      const at = this.lost.indexOf(slot);
      if (at >= 0) this.lost.splice(at, 1);
      this.forget(slot.key);
      this.options.changed?.("state");
    }
  }
}
