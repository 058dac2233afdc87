import { givesUpWaitingStore } from "../../fleet";
import { unstartedNamedStores } from "../../fleet/named-stores";
import type { Market } from "../../instances/vocabulary";
import { awsChoice, type Random } from "../rules";
import type { Fleet, LaunchOptions, SimInstance, SimPool } from "./fleet";

/**
 * An EC2 Auto Scaling group as the simulator models it, with the semantics a driver relies on:
 * - Raising desired capacity resumes Stopped warm-pool instances first, and launches new ones only
 *   when the warm pool has none. Which warm-pool instance starts is AWS's choice (`awsChoice`): a
 *   policy cannot count on getting a particular store back.
 * - The warm pool is kept at its target size: AWS launches new instances into it (they boot, then
 *   stop) or terminates extra ones (again, of its own choosing).
 * - With scale-in protection, lowering desired capacity removes nothing; `release` (unprotect one
 *   instance, then decrement) removes exactly that instance: back into the warm pool when it reuses
 *   instances on scale-in, terminated otherwise.
 * - Without protection, AWS picks which instances to terminate on scale-in, busy or not.
 * - An instance that goes away (a spot interruption) is replaced while desired capacity says so.
 * - A detached instance leaves the group, which replaces it at once (desired capacity unchanged).
 */
export interface AsgOptions {
  group: string;
  /** The market of the next launch (a mixed-instances group decides per launch). */
  market: (asg: SimAsg) => Market;
  /** Stopped instances kept for reuse; null for a group without a warm pool. */
  warmPoolSize: number | null;
  /** Instances launched protected from scale-in (Hearth); without, AWS picks what to terminate. */
  protectedFromScaleIn: boolean;
  /** Which instances AWS picks when the choice is its own. */
  random: Random;
  /**
   * Which Stopped instance resumes, when the policy names it (stopped instances kept outside a warm
   * pool: Standby and StopInstances); without it, AWS's choice. Only the `--choose-resume` prototype
   * of an on-demand warm pool names one this way.
   */
  chooseResume?: (stopped: SimInstance[]) => SimInstance | undefined;
  /**
   * The group is kept by the policy through EC2, not by Auto Scaling (Hearth's spot warm group): it
   * starts the stopped instances `apply` names, in order, then the most recently launched; it launches
   * `apply`'s `onDemand` new instances on-demand before anything else; and an oversized stopped pool
   * loses its never-used stores first, then the least recently started.
   */
  keptByPolicy?: boolean;
  /** More launch options for each launch (persistent spot, a store volume to attach). */
  launchOptions?: (asg: SimAsg) => Partial<LaunchOptions>;
}

export class SimAsg {
  desired = 0;
  warmPoolSize: number | null;
  /** In service: launching, ready or draining, until released or gone. */
  readonly members: SimInstance[] = [];
  /** The warm pool: Stopped instances, and new ones on their way there. */
  readonly warmPool: SimInstance[] = [];

  /** The group's name, as the fleet driver names it: the pool's, then the group's. */
  readonly name: string;

  constructor(
    private readonly fleet: Fleet,
    readonly pool: SimPool,
    private readonly options: AsgOptions,
  ) {
    this.warmPoolSize = options.warmPoolSize;
    this.name = `${pool.name}-${options.group}`;
  }

  get group(): string {
    return this.options.group;
  }

  /** In service and warm pool at their targets: nothing for AWS to do. */
  get satisfied(): boolean {
    return (
      this.members.length === this.desired &&
      (this.warmPoolSize === null || this.warmPool.length === this.warmPoolSize)
    );
  }

  countMembers(predicate: (instance: SimInstance) => boolean): number {
    let count = 0;
    for (const instance of this.members) if (predicate(instance)) count++;
    return count;
  }

  setDesired(desired: number): void {
    this.desired = Math.max(0, desired);
    this.reconcile();
  }

  /**
   * Releases, desired capacity and warm-pool size in one step, as a driver applies a plan (the warm
   * pool's size is MaxGroupPreparedCapacity minus desired, so both change together).
   */
  apply(change: {
    release: readonly SimInstance[];
    desired: number;
    warmPoolSize?: number;
    /** Stopped instances to start first, by id (`keptByPolicy`). */
    resume?: readonly string[];
    /** How many of `resume` the plan counts as started (`keptByPolicy`). */
    resumes?: number;
    /** New on-demand instances among those added (`keptByPolicy`). */
    onDemand?: number;
    /** Of those added, how many may stay unadded: stores started for warmth, never launched (`keptByPolicy`). */
    optional?: number;
  }): void {
    this.resumeFirst = change.resume ?? [];
    this.namedStopped = this.resumeFirst.filter((id) =>
      this.warmPool.some((instance) => instance.id === id && instance.state === "stopped"),
    ).length;
    this.countedStarted = change.resumes ?? 0;
    this.startsSinceApply = 0;
    this.onDemandLeft = change.onDemand ?? 0;
    this.optional = change.optional ?? 0;
    for (const instance of change.release) this.detachForRelease(instance);
    this.desired = Math.max(0, change.desired);
    if (change.warmPoolSize !== undefined) {
      if (this.warmPoolSize === null) throw new Error(`group ${this.group} has no warm pool`);
      this.warmPoolSize = Math.max(0, change.warmPoolSize);
    }
    this.reconcile();
  }

  /** Unprotect one instance and decrement desired capacity: exactly this instance leaves. */
  release(instance: SimInstance): void {
    this.detachForRelease(instance);
    this.reconcile();
  }

  private detachForRelease(instance: SimInstance): void {
    const at = this.members.indexOf(instance);
    if (at < 0) throw new Error(`${instance.id} is not in service in ${this.group}`);
    if (instance.busy > 0) throw new Error(`${instance.id} is busy`);
    this.members.splice(at, 1);
    this.desired = Math.max(0, this.desired - 1);
    // A group the policy keeps holds spot stores: an on-demand instance (a retried job's) goes.
    if (this.warmPoolSize !== null && !(this.options.keptByPolicy && instance.market === "on-demand")) {
      this.fleet.stop(instance);
      this.warmPool.push(instance);
    } else {
      this.fleet.terminate(instance);
    }
  }

  /**
   * `DetachInstances` with `ShouldDecrementDesiredCapacity: false`: the instance leaves the group
   * (which no longer replaces or terminates it) and the group launches its replacement at once.
   */
  detach(instance: SimInstance): void {
    const at = this.members.indexOf(instance);
    // A persistent spot instance warned on its way into the stopped pool is not in service: it stays.
    if (at < 0 && instance.persistent && this.warmPool.includes(instance)) return;
    if (at < 0) throw new Error(`${instance.id} is not in service in ${this.group}`);
    this.members.splice(at, 1);
    instance.owner = null;
    this.reconcile();
  }

  /**
   * A persistent spot instance of ours stopped (an interruption) or failed to start: it waits Stopped
   * with the group's other stopped instances, and the group works towards its desired capacity again.
   */
  takeBackStopped(instance: SimInstance): void {
    for (const list of [this.members, this.warmPool]) {
      const at = list.indexOf(instance);
      if (at >= 0) list.splice(at, 1);
    }
    instance.owner = this;
    this.warmPool.push(instance);
    this.reconcile();
  }

  /**
   * Terminates one Stopped instance the policy keeps itself (TerminateInstances), and keeps the stopped
   * pool one smaller, so that nothing is launched to replace it until the policy asks again.
   */
  dropStopped(instance: SimInstance): void {
    const at = this.warmPool.indexOf(instance);
    if (at < 0 || instance.state !== "stopped") return;
    this.warmPool.splice(at, 1);
    if (this.warmPoolSize !== null) this.warmPoolSize = Math.max(0, this.warmPoolSize - 1);
    this.fleet.terminate(instance);
  }

  /** The fleet terminated one of ours (an interruption): forget it, and replace it if still desired. */
  forget(instance: SimInstance): void {
    let known = false;
    for (const list of [this.members, this.warmPool]) {
      const at = list.indexOf(instance);
      if (at >= 0) {
        list.splice(at, 1);
        known = true;
      }
    }
    if (known) this.reconcile();
  }

  /** `apply`'s named resumes and on-demand launches, until the next `apply`. */
  private resumeFirst: readonly string[] = [];
  /** Of `resumeFirst`, those stopped at the `apply`, and how many the plan counts as started. */
  private namedStopped = 0;
  private countedStarted = 0;
  private startsSinceApply = 0;
  private onDemandLeft = 0;
  private optional = 0;

  /** The stopped instance to start: the named one, or the policy's or AWS's choice. */
  private toStart(stopped: SimInstance[]): SimInstance {
    if (this.options.keptByPolicy) {
      for (const id of this.resumeFirst) {
        const named = stopped.find((instance) => instance.id === id);
        if (named) return named;
      }
      return stopped.reduce((best, instance) => (instance.launchedAt > best.launchedAt ? instance : best));
    }
    return (this.options.chooseResume?.(stopped) ?? awsChoice(stopped, this.options.random)) as SimInstance;
  }

  reconcile(): void {
    while (this.members.length < this.desired) {
      if (this.onDemandLeft > 0) {
        const extra = this.options.launchOptions?.(this) ?? {};
        const instance = this.fleet.launch(this.pool, {
          ...extra,
          market: "on-demand",
          persistent: false,
          group: this.group,
        });
        if (instance === null) break;
        this.onDemandLeft--;
        instance.owner = this;
        this.members.push(instance);
        continue;
      }
      // An instance a spot interruption stopped starts again only when EC2 starts it.
      const stopped = this.warmPool.filter(
        (instance) => instance.state === "stopped" && !instance.stoppedByInterruption,
      );
      if (stopped.length > 0) {
        const instance = this.toStart(stopped);
        if (!this.fleet.resume(instance)) break;
        this.startsSinceApply++;
        this.warmPool.splice(this.warmPool.indexOf(instance), 1);
        this.members.push(instance);
      } else {
        // What is still missing was asked for warmth only: a new instance would be cold.
        if (this.desired - this.members.length <= this.optional) break;
        const instance = this.fleet.launch(this.pool, {
          market: this.options.market(this),
          group: this.group,
          ...this.options.launchOptions?.(this),
        });
        if (instance === null) break;
        instance.owner = this;
        this.members.push(instance);
      }
    }
    if (!this.options.protectedFromScaleIn) {
      while (this.members.length > this.desired) {
        const instance = this.members[this.options.random.int(this.members.length)] as SimInstance;
        this.members.splice(this.members.indexOf(instance), 1);
        this.fleet.terminate(instance);
      }
    }
    if (this.warmPoolSize === null) return;
    // A store a spot interruption stopped is none of the warm pool (it cannot start when a job needs
    // it), and is given up once its last start is an hour old, as the fleet drivers do.
    let waiting = 0;
    // (The copy only when some store waits: the group reconciles at every iteration of every run.)
    if (this.options.keptByPolicy && this.warmPool.some((instance) => instance.stoppedByInterruption)) {
      for (const instance of [...this.warmPool]) {
        if (!instance.stoppedByInterruption || instance.state !== "stopped") continue;
        if (givesUpWaitingStore(instance.launchedAt * 1000, this.fleet.now * 1000)) {
          this.warmPool.splice(this.warmPool.indexOf(instance), 1);
          this.fleet.terminate(instance);
        } else waiting++;
      }
    }
    // Named stores the plan counts as started that did not start: none of the warm pool, as the
    // drivers reckon them.
    if (this.options.keptByPolicy)
      waiting += unstartedNamedStores(this.namedStopped, this.countedStarted, this.startsSinceApply);
    while (this.warmPool.length - waiting < this.warmPoolSize) {
      const extra = this.options.launchOptions?.(this) ?? {};
      const instance = this.fleet.launch(this.pool, {
        // A warm pool's instances are on-demand; a policy's own stopped persistent spot instances are not.
        market: extra.persistent ? "spot" : "on-demand",
        group: this.group,
        ...extra,
        intoWarmPool: true,
      });
      if (instance === null) break;
      instance.owner = this;
      this.warmPool.push(instance);
    }
    while (this.warmPool.length - waiting > this.warmPoolSize) {
      const instance = (
        this.options.keptByPolicy
          ? this.warmPool
              .filter((i) => !i.stoppedByInterruption)
              .reduce((first, i) => (retiresBefore(i, first) ? i : first))
          : awsChoice(this.warmPool, this.options.random)
      ) as SimInstance;
      this.warmPool.splice(this.warmPool.indexOf(instance), 1);
      this.fleet.terminate(instance);
    }
  }
}

/** Which of two stopped stores a kept group retires first: one that never ran a job, then the older start. */
const retiresBefore = (a: SimInstance, b: SimInstance): boolean => {
  const aUsed = a.keys.length > 0;
  const bUsed = b.keys.length > 0;
  if (aUsed !== bUsed) return !aUsed;
  return a.launchedAt < b.launchedAt;
};
