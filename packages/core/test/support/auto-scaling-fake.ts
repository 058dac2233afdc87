import {
  type Activity,
  AutoScalingClient,
  AutoScalingServiceException,
  DescribeAutoScalingGroupsCommand,
  type DescribeAutoScalingGroupsCommandInput,
  DescribeAutoScalingInstancesCommand,
  type DescribeAutoScalingInstancesCommandInput,
  DescribeScalingActivitiesCommand,
  type DescribeScalingActivitiesCommandInput,
  DescribeWarmPoolCommand,
  type DescribeWarmPoolCommandInput,
  DetachInstancesCommand,
  type DetachInstancesCommandInput,
  PutWarmPoolCommand,
  type PutWarmPoolCommandInput,
  SetDesiredCapacityCommand,
  type SetDesiredCapacityCommandInput,
  SetInstanceProtectionCommand,
  type SetInstanceProtectionCommandInput,
  UpdateAutoScalingGroupCommand,
  type UpdateAutoScalingGroupCommandInput,
  type WarmPoolConfiguration,
} from "@aws-sdk/client-auto-scaling";
import {
  CancelSpotInstanceRequestsCommand,
  type CancelSpotInstanceRequestsCommandInput,
  DeleteTagsCommand,
  type DeleteTagsCommandInput,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  type StartInstancesCommandInput,
  StopInstancesCommand,
  type StopInstancesCommandInput,
  TerminateInstancesCommand,
  type TerminateInstancesCommandInput,
} from "@aws-sdk/client-ec2";
import {
  AddTagsToResourceCommand,
  type AddTagsToResourceCommandInput,
  DeleteParameterCommand,
  type DeleteParameterCommandInput,
  GetParameterCommand,
  type GetParameterCommandInput,
  PutParameterCommand,
  type PutParameterCommandInput,
  SSMClient,
  SSMServiceException,
} from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { awsChoice, Random } from "../../src/simulation/rules";

/**
 * A stateful model of EC2 Auto Scaling and EC2 behind mocked SDK clients, for the AWS driver's tests
 * and the fleet port's contract suite. What one call changes, the next describe shows. What Auto
 * Scaling does on its own (launch, resume from the warm pool, scale in, fill the warm pool, replace
 * an interrupted instance) happens when a test lets it act (`step`, `settle`), as it would a few
 * seconds after the call in AWS. Its choices follow the fleet model (`simulation/rules`): which Stopped
 * warm-pool instance resumes, which unprotected instance a scale-in takes, which extra warm-pool
 * instance goes.
 */

export interface FakeInstance {
  id: string;
  /** Auto Scaling's LifecycleState: `Pending`, `InService`, `Warmed:Stopped`, … */
  state: string;
  protected: boolean;
  az?: string;
  spot?: boolean;
  launchTime?: Date;
  /** False: Auto Scaling lists it, EC2 does not show it yet (eventual consistency). */
  visibleToEc2?: boolean;
}

/** An instance out of every group (detached): EC2 alone knows it, until it is terminated. */
export interface FakeLooseInstance extends FakeInstance {
  /** EC2's state: `running`, then `shutting-down` and `terminated` once terminated. */
  ec2State: "running" | "shutting-down" | "terminated";
  /** The group it was detached from. */
  detachedFrom: string;
}

export interface FakeGroup {
  name: string;
  min: number;
  max: number;
  desired: number;
  instances: FakeInstance[];
  warmPool?: WarmPoolConfiguration;
  warmInstances: FakeInstance[];
  /** Mixed instances policy: OnDemandPercentageAboveBaseCapacity; absent without a policy. */
  onDemandPercent?: number;
  /** NewInstancesProtectedFromScaleIn (Hearth's infra sets it on both groups). */
  protectNewInstances: boolean;
  /** Tags the group propagates to its instances at launch (infra's stage, pool and group tags). */
  tags?: Record<string, string>;
  /** The group's subnets (`VPCZoneIdentifier`), of `SUBNETS`. */
  subnets?: string[];
}

/**
 * An instance EC2 launched outside any group (RunInstances): a warm group Hearth keeps itself. Its
 * state moves on when the model steps (pending → running, stopping → stopped, shutting-down →
 * terminated), as EC2's would a few seconds after the call.
 */
export interface FakeEc2Instance {
  id: string;
  ec2State: "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";
  tags: Record<string, string>;
  spot: boolean;
  spotRequestId?: string;
  subnet: string;
  az: string;
  instanceType: string;
  launchTime: Date;
  /** Stopped by a spot interruption: only EC2 may start it again. */
  interrupted?: boolean;
}

/** A spot request as EC2 keeps it: a persistent one relaunches while it stands. */
export interface FakeSpotRequest {
  id: string;
  type: "persistent" | "one-time";
  state: "active" | "open" | "cancelled" | "closed";
  instanceId?: string;
  tags: Record<string, string>;
  /** What a relaunch repeats. */
  launch: { subnet: string; instanceType: string; tags: Record<string, string> };
}

export const ec2Error = (name: string, message: string) =>
  new EC2ServiceException({ name, $fault: "client", $metadata: { httpStatusCode: 400 }, message });

/** The subnets the model knows, and their zones. */
export const SUBNETS: Record<string, string> = {
  "subnet-a": "us-east-1a",
  "subnet-b": "us-east-1b",
  "subnet-c": "us-east-1c",
};

export const validation = (message: string) =>
  new AutoScalingServiceException({
    name: "ValidationError",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message,
  });

const ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"];

export const ssmError = (name: string, message: string) =>
  new SSMServiceException({ name, $fault: "client", $metadata: { httpStatusCode: 400 }, message });

/** A Parameter Store parameter as the model keeps it. */
export interface FakeParameter {
  value: string;
  type: string;
  tier: string;
  version: number;
  tags: Record<string, string>;
}

/** Parameter Store's limits on a value, per tier (the API reference's 4 KB and 8 KB). */
const STANDARD_BYTES = 4096;
const ADVANCED_BYTES = 8192;

export class FakeAws {
  groups = new Map<string, FakeGroup>();
  activities: Activity[] = [];
  /** Parameter Store, by name. */
  parameters = new Map<string, FakeParameter>();
  /** Instances detached from their groups: EC2 still runs them (and shows terminated ones a while). */
  loose: FakeLooseInstance[] = [];
  /** Instances launched by RunInstances, in no group. */
  ec2Instances: FakeEc2Instance[] = [];
  spotRequests = new Map<string, FakeSpotRequest>();
  /** How many more spot instances EC2 can launch or start now; an ask beyond it fails whole. */
  spotCapacity = Number.POSITIVE_INFINITY;
  /** RunInstances' client tokens, and the instances each launched (idempotency). */
  clientTokens = new Map<string, string[]>();
  /** The account and region the model is (instance ARNs, and the instance role's tag condition). */
  readonly account: string;
  readonly region = "us-east-1";
  /** Clients made with an instance's credentials: calls made with them are the instance's. */
  private readonly instanceClients = new WeakMap<SSMClient, string>();
  /** Errors the next calls of an API throw, in turn, before it answers again. */
  failures = new Map<string, Error[]>();
  warmPoolPageSize = 2;
  ec2PageSize = 1_000;
  /** EC2's LaunchTime for an instance a test put in place without one: an hour before `now`. */
  readonly defaultLaunchTime: number;
  private launched = 0;
  private readonly random: Random;
  readonly now: () => Date;

  constructor(options: { seed?: number; now?: () => Date; account?: string } = {}) {
    this.account = options.account ?? "123456789012";
    this.random = Random.stream(options.seed ?? 1, "auto-scaling");
    this.now = options.now ?? (() => new Date());
    this.defaultLaunchTime = this.now().getTime() - 3_600_000;
  }

  group(group: Partial<FakeGroup> & Pick<FakeGroup, "name">): FakeGroup {
    const full: FakeGroup = {
      min: 0,
      max: 20,
      desired: 0,
      instances: [],
      warmInstances: [],
      protectNewInstances: true,
      ...group,
    };
    this.groups.set(full.name, full);
    return full;
  }

  get(name: string): FakeGroup {
    const group = this.groups.get(name);
    if (!group) throw validation(`group ${name} not found`);
    return group;
  }

  all(): Array<{ group: FakeGroup; instance: FakeInstance }> {
    return [...this.groups.values()].flatMap((group) =>
      [...group.instances, ...group.warmInstances].map((instance) => ({ group, instance })),
    );
  }

  /**
   * An SSM client with an instance's instance-profile credentials: what the agent on that instance
   * uses. IAM then knows the caller's `ec2:SourceInstanceARN`; the model knows it by the client.
   */
  instanceSsm(instanceId: string): SSMClient {
    const client = new SSMClient({
      region: this.region,
      credentials: { accessKeyId: "ASIAINSTANCE", secretAccessKey: "instance", sessionToken: instanceId },
    });
    this.instanceClients.set(client, instanceId);
    return client;
  }

  /** The instance whose credentials a client holds, or undefined for Hearth's own role. */
  instanceOf(client: unknown): string | undefined {
    return this.instanceClients.get(client as SSMClient);
  }

  instanceArn(instanceId: string): string {
    return `arn:aws:ec2:${this.region}:${this.account}:instance/${instanceId}`;
  }

  fail(api: string, ...errors: Error[]) {
    this.failures.set(api, [...(this.failures.get(api) ?? []), ...errors]);
  }

  /**
   * With `overlap` on, each call takes a turn of the event loop to answer, so that calls a caller
   * makes at once overlap; `mostAtOnce` is then the most calls of each API in flight together.
   */
  overlap = false;
  readonly mostAtOnce = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();

  /** Answers one API call, or throws the next queued failure for it. */
  async answer<T>(api: string, respond: () => T): Promise<T> {
    if (this.overlap) {
      const now = (this.inFlight.get(api) ?? 0) + 1;
      this.inFlight.set(api, now);
      this.mostAtOnce.set(api, Math.max(this.mostAtOnce.get(api) ?? 0, now));
      await new Promise((resolve) => setImmediate(resolve));
      this.inFlight.set(api, (this.inFlight.get(api) ?? 1) - 1);
    }
    const error = this.failures.get(api)?.shift();
    if (error) throw error;
    return respond();
  }

  /** The stopped instances the warm pool is sized to keep (as AWS documents it), or null. */
  warmPoolTarget(group: FakeGroup): number | null {
    const config = group.warmPool;
    if (!config) return null;
    const prepared =
      config.MaxGroupPreparedCapacity != null && config.MaxGroupPreparedCapacity >= 0
        ? config.MaxGroupPreparedCapacity
        : group.max;
    return Math.max(config.MinSize ?? 0, prepared - group.desired, 0);
  }

  /** EC2 reclaims a spot instance (its two minutes' notice over): it terminates, and is replaced. */
  interrupt(id: string): void {
    for (const group of this.groups.values()) {
      const instance = group.instances.find((i) => i.id === id);
      if (instance) instance.state = "Terminating";
    }
    // A persistent spot instance whose interruption behavior is `stop`: stopped, store kept.
    const kept = this.ec2Instances.find((i) => i.id === id);
    if (kept && (kept.ec2State === "running" || kept.ec2State === "pending")) {
      kept.ec2State = "stopping";
      kept.interrupted = true;
    }
    // A detached instance is reclaimed all the same; no group replaces it.
    const loose = this.loose.find((i) => i.id === id);
    if (loose && loose.ec2State === "running") loose.ec2State = "shutting-down";
  }

  /** Auto Scaling acts until nothing is left to do. */
  settle(): void {
    for (let round = 0; round < 100; round++) if (!this.step()) return;
    throw new Error("the Auto Scaling model does not settle");
  }

  /**
   * One round of what Auto Scaling does on its own; returns whether anything changed. Launches and
   * resumes show as `Pending` for one round; warm-pool launches as `Warmed:Pending`.
   */
  step(): boolean {
    let changed = this.stepEc2();
    for (const instance of this.loose) {
      if (instance.ec2State === "shutting-down") {
        instance.ec2State = "terminated";
        changed = true;
      }
    }
    for (const group of this.groups.values()) {
      // What started last round finishes: booted, stopped, or gone.
      for (const instance of group.instances) {
        if (instance.state.startsWith("Pending")) {
          instance.state = "InService";
          changed = true;
        }
      }
      for (const instance of group.warmInstances) {
        if (instance.state.startsWith("Warmed:Pending")) {
          instance.state = "Warmed:Stopped";
          changed = true;
        }
      }
      const gone = (i: FakeInstance) => i.state.includes("Terminat");
      if (group.instances.some(gone) || group.warmInstances.some(gone)) {
        group.instances = group.instances.filter((i) => !gone(i));
        group.warmInstances = group.warmInstances.filter((i) => !gone(i));
        changed = true;
      }
      // Scale out: a Stopped warm-pool instance first (AWS's choice of which), else a new launch.
      while (group.instances.length < group.desired) {
        const stopped = group.warmInstances.filter((i) => i.state === "Warmed:Stopped");
        const resumed = awsChoice(stopped, this.random);
        if (resumed) {
          group.warmInstances.splice(group.warmInstances.indexOf(resumed), 1);
          resumed.state = "Pending";
          resumed.protected = group.protectNewInstances;
          resumed.launchTime = this.now();
          group.instances.push(resumed);
        } else {
          group.instances.push(this.launch(group, "Pending"));
        }
        changed = true;
      }
      // Scale in: only unprotected instances in service can go (AWS's choice among them).
      while (group.instances.length > group.desired) {
        const candidates = group.instances.filter((i) => i.state === "InService" && !i.protected);
        const leaving = awsChoice(candidates, this.random);
        if (!leaving) break;
        group.instances.splice(group.instances.indexOf(leaving), 1);
        if (group.warmPool?.InstanceReusePolicy?.ReuseOnScaleIn) {
          leaving.state = "Warmed:Stopped";
          leaving.protected = false;
          group.warmInstances.push(leaving);
        }
        changed = true;
      }
      // The warm pool keeps its size: new instances boot and stop; extra stopped ones go.
      const target = this.warmPoolTarget(group);
      if (target !== null) {
        while (group.warmInstances.length < target) {
          group.warmInstances.push(this.launch(group, "Warmed:Pending"));
          changed = true;
        }
        while (group.warmInstances.length > target) {
          const extra = awsChoice(
            group.warmInstances.filter((i) => i.state === "Warmed:Stopped"),
            this.random,
          );
          if (!extra) break;
          group.warmInstances.splice(group.warmInstances.indexOf(extra), 1);
          changed = true;
        }
      }
    }
    return changed;
  }

  /** EC2's own round: transitions finish; a standing persistent request relaunches its instance. */
  private stepEc2(): boolean {
    let changed = false;
    const next = { pending: "running", stopping: "stopped", "shutting-down": "terminated" } as const;
    for (const instance of this.ec2Instances) {
      const state = instance.ec2State;
      if (state === "pending" || state === "stopping" || state === "shutting-down") {
        instance.ec2State = next[state];
        changed = true;
      }
    }
    for (const request of this.spotRequests.values()) {
      if (request.type !== "persistent" || request.state === "cancelled" || request.state === "closed")
        continue;
      const instance = this.ec2Instances.find((i) => i.id === request.instanceId);
      if (instance && instance.ec2State !== "terminated" && instance.ec2State !== "shutting-down") continue;
      const relaunched = this.runInstance({
        ...request.launch,
        spot: true,
        requestId: request.id,
      });
      request.instanceId = relaunched.id;
      changed = true;
    }
    return changed;
  }

  /** One instance EC2 launches now (no group's). */
  runInstance(launch: {
    subnet: string;
    instanceType: string;
    tags: Record<string, string>;
    spot: boolean;
    requestId?: string;
  }): FakeEc2Instance {
    this.launched += 1;
    const instance: FakeEc2Instance = {
      id: `i-0${(0xe000 + this.launched).toString(16).padStart(16, "0")}`,
      ec2State: "pending",
      tags: { ...launch.tags },
      spot: launch.spot,
      ...(launch.requestId ? { spotRequestId: launch.requestId } : {}),
      subnet: launch.subnet,
      az: SUBNETS[launch.subnet] ?? "us-east-1a",
      instanceType: launch.instanceType,
      launchTime: this.now(),
    };
    this.ec2Instances.push(instance);
    return instance;
  }

  /** The instance EC2 launched (no group's) with this id, or a NotFound error as EC2 answers. */
  ec2Instance(id: string): FakeEc2Instance {
    const instance = this.ec2Instances.find((i) => i.id === id && i.ec2State !== "terminated");
    if (!instance) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    return instance;
  }

  private launch(group: FakeGroup, state: string): FakeInstance {
    this.launched += 1;
    const percent = group.onDemandPercent;
    return {
      id: `i-0${(0xf000 + this.launched).toString(16).padStart(16, "0")}`,
      state,
      protected: state === "Pending" && group.protectNewInstances,
      az: ZONES[this.launched % ZONES.length],
      // A mixed-instances group launches spot above its on-demand share; warm pools are on-demand.
      spot: percent !== undefined && !state.startsWith("Warmed") && this.launched % 100 >= percent,
      launchTime: this.now(),
    };
  }
}

const asInstance = (i: FakeInstance) => ({
  InstanceId: i.id,
  InstanceType: "c6a.xlarge",
  AvailabilityZone: i.az ?? "us-east-1a",
  LifecycleState: i.state,
  HealthStatus: "Healthy",
  ProtectedFromScaleIn: i.protected,
});

const asGroup = (g: FakeGroup) => ({
  AutoScalingGroupName: g.name,
  MinSize: g.min,
  MaxSize: g.max,
  DesiredCapacity: g.desired,
  Instances: g.instances.map(asInstance),
  WarmPoolConfiguration: g.warmPool ? { ...g.warmPool } : undefined,
  WarmPoolSize: g.warmPool ? g.warmInstances.length : undefined,
  MixedInstancesPolicy:
    g.onDemandPercent === undefined
      ? undefined
      : {
          LaunchTemplate: {
            LaunchTemplateSpecification: { LaunchTemplateName: `${g.name}-lt`, Version: "$Latest" },
          },
          InstancesDistribution: {
            OnDemandAllocationStrategy: "prioritized",
            OnDemandBaseCapacity: 0,
            OnDemandPercentageAboveBaseCapacity: g.onDemandPercent,
            SpotAllocationStrategy: "price-capacity-optimized",
          },
        },
  VPCZoneIdentifier: (g.subnets ?? []).join(","),
  // Hearth's burst groups run without Capacity Rebalancing: HandleInterruption replaces at-risk instances.
  CapacityRebalance: false,
  NewInstancesProtectedFromScaleIn: g.protectNewInstances,
});

/** The mocked clients: `mockClient` replaces `send` of every client of the class, in this worker. */
export const mockedClients = () => ({
  autoScaling: mockClient(AutoScalingClient),
  ec2: mockClient(EC2Client),
  ssm: mockClient(SSMClient),
});
export type MockedClients = ReturnType<typeof mockedClients>;

/** Puts `aws` behind the mocked clients (resetting their recorded calls). */
export function installFakeAws(aws: FakeAws, { autoScaling, ec2, ssm }: MockedClients) {
  autoScaling.reset();
  ec2.reset();
  ssm.reset();
  autoScaling.on(DescribeAutoScalingGroupsCommand).callsFake((input: DescribeAutoScalingGroupsCommandInput) =>
    aws.answer("DescribeAutoScalingGroups", () => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? [])
        .flatMap((name) => aws.groups.get(name) ?? [])
        .map(asGroup),
    })),
  );
  autoScaling.on(DescribeWarmPoolCommand).callsFake((input: DescribeWarmPoolCommandInput) =>
    aws.answer("DescribeWarmPool", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      const start = Number(input.NextToken ?? 0);
      const end = start + aws.warmPoolPageSize;
      return {
        WarmPoolConfiguration: group.warmPool,
        Instances: group.warmInstances.slice(start, end).map(asInstance),
        NextToken: end < group.warmInstances.length ? String(end) : undefined,
      };
    }),
  );
  autoScaling.on(DescribeScalingActivitiesCommand).callsFake((input: DescribeScalingActivitiesCommandInput) =>
    aws.answer("DescribeScalingActivities", () => ({
      Activities: aws.activities
        .filter((a) => a.AutoScalingGroupName === input.AutoScalingGroupName)
        .slice(0, input.MaxRecords ?? 100),
    })),
  );
  autoScaling
    .on(DescribeAutoScalingInstancesCommand)
    .callsFake((input: DescribeAutoScalingInstancesCommandInput) =>
      aws.answer("DescribeAutoScalingInstances", () => ({
        AutoScalingInstances: aws
          .all()
          .filter(({ instance }) => input.InstanceIds?.includes(instance.id))
          .map(({ group, instance }) => ({
            ...asInstance(instance),
            AutoScalingGroupName: group.name,
            LaunchTemplate: { LaunchTemplateName: `${group.name}-lt` },
          })),
      })),
    );
  autoScaling.on(SetDesiredCapacityCommand).callsFake((input: SetDesiredCapacityCommandInput) =>
    aws.answer("SetDesiredCapacity", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      const desired = input.DesiredCapacity ?? 0;
      if (desired < group.min || desired > group.max) throw validation(`desired ${desired} out of bounds`);
      group.desired = desired;
      return {};
    }),
  );
  autoScaling.on(SetInstanceProtectionCommand).callsFake((input: SetInstanceProtectionCommandInput) =>
    aws.answer("SetInstanceProtection", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      const ids = input.InstanceIds ?? [];
      // The API's limits: 50 ids per call, and never an instance in the warm pool.
      if (ids.length > 50) throw validation("at most 50 instance ids");
      for (const id of ids) {
        const instance = group.instances.find((i) => i.id === id);
        if (!instance) throw validation(`instance ${id} is not in service in ${group.name}`);
        instance.protected = input.ProtectedFromScaleIn ?? false;
      }
      return {};
    }),
  );
  autoScaling.on(PutWarmPoolCommand).callsFake((input: PutWarmPoolCommandInput) =>
    aws.answer("PutWarmPool", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      group.warmPool = {
        MinSize: input.MinSize,
        MaxGroupPreparedCapacity: input.MaxGroupPreparedCapacity,
        PoolState: input.PoolState,
        InstanceReusePolicy: input.InstanceReusePolicy,
      };
      return {};
    }),
  );
  autoScaling.on(UpdateAutoScalingGroupCommand).callsFake((input: UpdateAutoScalingGroupCommandInput) =>
    aws.answer("UpdateAutoScalingGroup", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      const percent = input.MixedInstancesPolicy?.InstancesDistribution?.OnDemandPercentageAboveBaseCapacity;
      if (percent !== undefined) group.onDemandPercent = percent;
      return {};
    }),
  );
  autoScaling.on(DetachInstancesCommand).callsFake((input: DetachInstancesCommandInput) =>
    aws.answer("DetachInstances", () => {
      const group = aws.get(input.AutoScalingGroupName ?? "");
      if (input.ShouldDecrementDesiredCapacity === undefined)
        throw validation("ShouldDecrementDesiredCapacity is required");
      for (const id of input.InstanceIds ?? []) {
        const instance = group.instances.find((i) => i.id === id);
        // As Auto Scaling answers: only an instance of the group, in service (or on standby).
        if (!instance)
          throw validation(`The instance ${id} is not part of Auto Scaling group ${group.name}.`);
        if (instance.state !== "InService" && instance.state !== "Standby")
          throw validation(`The instance ${id} is not in InService or Standby.`);
        group.instances.splice(group.instances.indexOf(instance), 1);
        aws.loose.push({ ...instance, state: "Detached", ec2State: "running", detachedFrom: group.name });
        if (input.ShouldDecrementDesiredCapacity) group.desired -= 1;
      }
      // Without a decrement, the group is short of desired: its next round launches the replacement.
      return { Activities: [] };
    }),
  );
  ec2.on(TerminateInstancesCommand).callsFake((input: TerminateInstancesCommandInput) =>
    aws.answer("TerminateInstances", () => {
      const ids = input.InstanceIds ?? [];
      for (const id of ids) {
        const known =
          aws.loose.some((i) => i.id === id) ||
          aws.all().some(({ instance }) => instance.id === id) ||
          aws.ec2Instances.some((i) => i.id === id && i.ec2State !== "terminated");
        if (!known) {
          throw new EC2ServiceException({
            name: "InvalidInstanceID.NotFound",
            $fault: "client",
            $metadata: {},
            message: `The instance ID '${id}' does not exist`,
          });
        }
      }
      return {
        TerminatingInstances: ids.map((id) => {
          const kept = aws.ec2Instances.find((i) => i.id === id && i.ec2State !== "terminated");
          if (kept) {
            const previous = kept.ec2State;
            kept.ec2State = "shutting-down";
            return {
              InstanceId: id,
              PreviousState: { Name: previous },
              CurrentState: { Name: kept.ec2State },
            };
          }
          const loose = aws.loose.find((i) => i.id === id);
          const previous = loose?.ec2State ?? "running";
          if (loose && loose.ec2State === "running") loose.ec2State = "shutting-down";
          // An instance still in a group: EC2 terminates it, and its group replaces it.
          for (const { instance } of aws.all()) if (instance.id === id) instance.state = "Terminating";
          return {
            InstanceId: id,
            PreviousState: { Name: previous },
            CurrentState: { Name: loose?.ec2State ?? "shutting-down" },
          };
        }),
      };
    }),
  );
  ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) =>
    aws.answer("DescribeInstances", () => {
      const ec2State = (instance: FakeInstance) =>
        "ec2State" in instance
          ? (instance as FakeLooseInstance).ec2State
          : instance.state.startsWith("Warmed:Stopped")
            ? "stopped"
            : instance.state.includes("Terminat")
              ? "shutting-down"
              : "running";
      // An instance keeps the tags its group gave it at launch, detached or not, and Auto Scaling's
      // own `aws:autoscaling:groupName`.
      const tagsOf = (instance: FakeInstance): Record<string, string> => {
        const from =
          "detachedFrom" in instance
            ? aws.groups.get((instance as FakeLooseInstance).detachedFrom)
            : aws.all().find((entry) => entry.instance.id === instance.id)?.group;
        return from ? { ...from.tags, "aws:autoscaling:groupName": from.name } : {};
      };
      const described = [
        ...[
          ...aws.all().filter(({ instance }) => instance.visibleToEc2 !== false),
          ...aws.loose.map((instance) => ({ instance })),
        ].map(({ instance }) => ({
          id: instance.id,
          state: ec2State(instance),
          tags: tagsOf(instance),
          out: {
            InstanceId: instance.id,
            State: { Name: ec2State(instance) },
            InstanceLifecycle: instance.spot ? ("spot" as const) : undefined,
            LaunchTime: instance.launchTime ?? new Date(aws.defaultLaunchTime),
          },
        })),
        ...aws.ec2Instances.map((instance) => ({
          id: instance.id,
          state: instance.ec2State,
          tags: instance.tags,
          out: {
            InstanceId: instance.id,
            State: { Name: instance.ec2State },
            InstanceLifecycle: instance.spot ? ("spot" as const) : undefined,
            SpotInstanceRequestId: instance.spotRequestId,
            SubnetId: instance.subnet,
            Placement: { AvailabilityZone: instance.az },
            InstanceType: instance.instanceType as never,
            LaunchTime: instance.launchTime,
            // As EC2 explains a stop (API Reference, StateReason).
            ...(instance.ec2State === "stopping" || instance.ec2State === "stopped"
              ? {
                  StateReason: instance.interrupted
                    ? { Code: "Server.SpotInstanceShutdown", Message: "Server.SpotInstanceShutdown: spot" }
                    : { Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown" },
                }
              : {}),
          },
        })),
      ];
      if (input.InstanceIds) {
        // As EC2 does: one id it does not know fails the whole call.
        const missing = input.InstanceIds.find((id) => !described.some((d) => d.id === id));
        if (missing)
          throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
      }
      const ids = input.InstanceIds ?? input.Filters?.find((f) => f.Name === "instance-id")?.Values;
      const tagFilters = (input.Filters ?? []).filter((f) => f.Name?.startsWith("tag:"));
      const states = input.Filters?.find((f) => f.Name === "instance-state-name")?.Values;
      const matching = described.filter(
        (d) =>
          (ids !== undefined || tagFilters.length > 0) &&
          (ids === undefined || ids.includes(d.id)) &&
          tagFilters.every((f) => (f.Values ?? []).includes(d.tags[(f.Name ?? "").slice(4)] ?? "")) &&
          (states === undefined || states.includes(d.state)),
      );
      const start = Number(input.NextToken ?? 0);
      const end = start + aws.ec2PageSize;
      return {
        Reservations: [
          {
            Instances: matching.slice(start, end).map((d) => ({
              ...d.out,
              Tags: Object.entries(d.tags).map(([Key, Value]) => ({ Key, Value })),
            })),
          },
        ],
        NextToken: end < matching.length ? String(end) : undefined,
      };
    }),
  );
  installFakeEc2Launches(aws, ec2);
  installFakeParameterStore(aws, ssm);
}

/**
 * EC2's launches outside any group, with the rules AWS states: RunInstances launches all or nothing
 * (MinCount = MaxCount), once per client token; a spot launch beyond the spot capacity left fails with
 * InsufficientInstanceCapacity; stop-on-interruption needs a persistent request; only a stopped
 * instance starts, and a spot one an interruption stopped only by EC2; only a persistent spot instance
 * stops; a cancelled request launches nothing more.
 */
function installFakeEc2Launches(aws: FakeAws, ec2: MockedClients["ec2"]) {
  const tagsOf = (input: RunInstancesCommandInput, type: string) =>
    Object.fromEntries(
      (input.TagSpecifications ?? [])
        .filter((spec) => spec.ResourceType === type)
        .flatMap((spec) => spec.Tags ?? [])
        .map((tag) => [tag.Key ?? "", tag.Value ?? ""]),
    );
  ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) =>
    aws.answer("RunInstances", () => {
      const token = input.ClientToken;
      const earlier = token ? aws.clientTokens.get(token) : undefined;
      const reply = (ids: readonly string[]) => ({
        Instances: ids.map((id) => ({ InstanceId: id, State: { Name: aws.ec2Instance(id).ec2State } })),
      });
      if (earlier) return reply(earlier);
      const count = input.MaxCount ?? 0;
      if (count < 1 || input.MinCount !== count)
        throw ec2Error("InvalidParameterValue", "MinCount and MaxCount must be equal and at least 1 here");
      if (!input.LaunchTemplate?.LaunchTemplateId && !input.LaunchTemplate?.LaunchTemplateName)
        throw ec2Error("MissingParameter", "a launch template is required");
      if (!input.SubnetId || !SUBNETS[input.SubnetId])
        throw ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${input.SubnetId}' does not exist`);
      const market = input.InstanceMarketOptions;
      const spot = market?.MarketType === "spot";
      const persistent = market?.SpotOptions?.SpotInstanceType === "persistent";
      if (spot && market?.SpotOptions?.InstanceInterruptionBehavior === "stop" && !persistent)
        throw ec2Error("InvalidParameterCombination", "stop requires a persistent spot request");
      const requestTags = tagsOf(input, "spot-instances-request");
      if (!spot && Object.keys(requestTags).length)
        throw ec2Error("InvalidParameterValue", "spot-instances-request tags need a spot launch");
      if (spot) {
        if (count > aws.spotCapacity)
          throw ec2Error(
            "InsufficientInstanceCapacity",
            "There is no Spot capacity available that matches your request.",
          );
        aws.spotCapacity -= count;
      }
      const launch = {
        subnet: input.SubnetId,
        instanceType: input.InstanceType ?? "m5.large",
        tags: tagsOf(input, "instance"),
      };
      const ids: string[] = [];
      for (let n = 0; n < count; n++) {
        let requestId: string | undefined;
        if (spot) {
          requestId = `sir-${(aws.spotRequests.size + 1).toString(16).padStart(8, "0")}`;
          aws.spotRequests.set(requestId, {
            id: requestId,
            type: persistent ? "persistent" : "one-time",
            state: "active",
            tags: requestTags,
            launch,
          });
        }
        const instance = aws.runInstance({ ...launch, spot, ...(requestId ? { requestId } : {}) });
        const request = requestId ? aws.spotRequests.get(requestId) : undefined;
        if (request) request.instanceId = instance.id;
        ids.push(instance.id);
      }
      if (token) aws.clientTokens.set(token, ids);
      return reply(ids);
    }),
  );
  ec2.on(StartInstancesCommand).callsFake((input: StartInstancesCommandInput) =>
    aws.answer("StartInstances", () => {
      const instances = (input.InstanceIds ?? []).map((id) => aws.ec2Instance(id));
      for (const instance of instances) {
        if (instance.ec2State !== "stopped")
          throw ec2Error(
            "IncorrectInstanceState",
            `The instance '${instance.id}' is not in a state from which it can be started.`,
          );
        if (instance.interrupted)
          throw ec2Error(
            "IncorrectSpotRequestState",
            `The spot request of '${instance.id}' is not in a state to start the instance`,
          );
      }
      const spot = instances.filter((i) => i.spot).length;
      if (spot > aws.spotCapacity)
        throw ec2Error(
          "InsufficientInstanceCapacity",
          "There is no Spot capacity available that matches your request.",
        );
      aws.spotCapacity -= spot;
      return {
        StartingInstances: instances.map((instance) => {
          instance.ec2State = "pending";
          instance.launchTime = aws.now();
          return { InstanceId: instance.id, CurrentState: { Name: "pending" as const } };
        }),
      };
    }),
  );
  ec2.on(StopInstancesCommand).callsFake((input: StopInstancesCommandInput) =>
    aws.answer("StopInstances", () => {
      const instances = (input.InstanceIds ?? []).map((id) => aws.ec2Instance(id));
      for (const instance of instances) {
        if (!["pending", "running", "stopping", "stopped"].includes(instance.ec2State))
          throw ec2Error(
            "IncorrectInstanceState",
            `The instance '${instance.id}' is not in a state from which it can be stopped.`,
          );
        const request = instance.spotRequestId ? aws.spotRequests.get(instance.spotRequestId) : undefined;
        if (instance.spot && request?.type !== "persistent")
          throw ec2Error("UnsupportedOperation", "Only a persistent spot instance can be stopped.");
      }
      return {
        StoppingInstances: instances.map((instance) => {
          if (instance.ec2State === "pending" || instance.ec2State === "running")
            instance.ec2State = "stopping";
          return { InstanceId: instance.id, CurrentState: { Name: instance.ec2State } };
        }),
      };
    }),
  );
  ec2.on(CancelSpotInstanceRequestsCommand).callsFake((input: CancelSpotInstanceRequestsCommandInput) =>
    aws.answer("CancelSpotInstanceRequests", () => {
      const requests = (input.SpotInstanceRequestIds ?? []).map((id) => {
        const request = aws.spotRequests.get(id);
        if (!request)
          throw ec2Error(
            "InvalidSpotInstanceRequestID.NotFound",
            `The spot instance request ID '${id}' does not exist`,
          );
        return request;
      });
      return {
        CancelledSpotInstanceRequests: requests.map((request) => {
          request.state = "cancelled";
          return { SpotInstanceRequestId: request.id, State: "cancelled" as const };
        }),
      };
    }),
  );
  ec2.on(DeleteTagsCommand).callsFake((input: DeleteTagsCommandInput) =>
    aws.answer("DeleteTags", () => {
      for (const id of input.Resources ?? []) {
        const instance = aws.ec2Instance(id);
        for (const tag of input.Tags ?? []) delete instance.tags[tag.Key ?? ""];
      }
      return {};
    }),
  );
}

/**
 * Parameter Store as runner configs use it, with the rules AWS enforces: PutParameter refuses Tags
 * together with Overwrite, and an existing name without Overwrite (ParameterAlreadyExists); a value
 * over the tier's size is refused (Intelligent-Tiering upgrades to Advanced). A call made with an
 * instance's credentials (`instanceCredentials`) is held to the instance role's OwnRunnerConfig
 * statement: GetParameter and DeleteParameter only on a parameter whose `hearth:instance-arn` tag is
 * that instance's ARN, AccessDeniedException otherwise (as IAM answers, whether or not it exists).
 */
function installFakeParameterStore(aws: FakeAws, ssm: MockedClients["ssm"]) {
  const caller = async (getClient: () => unknown): Promise<string | undefined> => aws.instanceOf(getClient());
  const denied = (instanceId: string, action: string, name: string) =>
    ssmError(
      "AccessDeniedException",
      `User: arn:aws:sts::${aws.account}:assumed-role/instance/${instanceId} is not authorized to perform: ${action} on resource: arn:aws:ssm:${aws.region}:${aws.account}:parameter${name}`,
    );
  /** Whether an instance's own role may touch `name` (tag condition on the parameter). */
  const mayTouch = (instanceId: string, name: string) =>
    aws.parameters.get(name)?.tags["hearth:instance-arn"] === aws.instanceArn(instanceId);

  ssm.on(PutParameterCommand).callsFake(async (input: PutParameterCommandInput, getClient) => {
    const instanceId = await caller(getClient);
    return aws.answer("PutParameter", () => {
      const name = input.Name ?? "";
      if (instanceId) throw denied(instanceId, "ssm:PutParameter", name);
      if (!name.startsWith("/") || !input.Value || !input.Type)
        throw ssmError("ValidationException", "invalid request");
      if (input.Tags?.length && input.Overwrite) {
        throw ssmError(
          "ValidationException",
          "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
        );
      }
      const existing = aws.parameters.get(name);
      if (existing && !input.Overwrite) {
        throw ssmError(
          "ParameterAlreadyExists",
          "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
        );
      }
      const bytes = Buffer.byteLength(input.Value, "utf8");
      const asked = input.Tier ?? "Standard";
      const tier =
        asked === "Intelligent-Tiering" ? (bytes > STANDARD_BYTES ? "Advanced" : "Standard") : asked;
      if (bytes > (tier === "Advanced" ? ADVANCED_BYTES : STANDARD_BYTES)) {
        throw ssmError(
          "ValidationException",
          `1 validation error detected: Value '${input.Value}' at 'value' failed to satisfy constraint: Member must have length less than or equal to ${tier === "Advanced" ? ADVANCED_BYTES : STANDARD_BYTES}`,
        );
      }
      const version = (existing?.version ?? 0) + 1;
      aws.parameters.set(name, {
        value: input.Value,
        type: input.Type,
        tier,
        version,
        tags: existing?.tags ?? Object.fromEntries((input.Tags ?? []).map((tag) => [tag.Key, tag.Value])),
      });
      return { Version: version, Tier: tier };
    });
  });
  ssm.on(AddTagsToResourceCommand).callsFake(async (input: AddTagsToResourceCommandInput, getClient) => {
    const instanceId = await caller(getClient);
    return aws.answer("AddTagsToResource", () => {
      const name = input.ResourceId ?? "";
      if (instanceId) throw denied(instanceId, "ssm:AddTagsToResource", name);
      const parameter = aws.parameters.get(name);
      if (input.ResourceType !== "Parameter" || !parameter)
        throw ssmError("InvalidResourceId", "The resource ID is not valid. Verify the ID and try again.");
      for (const tag of input.Tags ?? []) parameter.tags[tag.Key ?? ""] = tag.Value ?? "";
      return {};
    });
  });
  ssm.on(GetParameterCommand).callsFake(async (input: GetParameterCommandInput, getClient) => {
    const instanceId = await caller(getClient);
    return aws.answer("GetParameter", () => {
      const name = input.Name ?? "";
      if (instanceId && !mayTouch(instanceId, name)) throw denied(instanceId, "ssm:GetParameter", name);
      const parameter = aws.parameters.get(name);
      if (!parameter) throw ssmError("ParameterNotFound", "");
      const decrypt = parameter.type !== "SecureString" || input.WithDecryption === true;
      return {
        Parameter: {
          Name: name,
          Type: parameter.type,
          Value: decrypt ? parameter.value : "AQICAHencrypted",
          Version: parameter.version,
          ARN: `arn:aws:ssm:${aws.region}:${aws.account}:parameter${name}`,
        },
      };
    });
  });
  ssm.on(DeleteParameterCommand).callsFake(async (input: DeleteParameterCommandInput, getClient) => {
    const instanceId = await caller(getClient);
    return aws.answer("DeleteParameter", () => {
      const name = input.Name ?? "";
      if (instanceId && !mayTouch(instanceId, name)) throw denied(instanceId, "ssm:DeleteParameter", name);
      if (!aws.parameters.delete(name)) throw ssmError("ParameterNotFound", "");
      return {};
    });
  });
}
