import type { FunctionName } from "../../packages/functions/src/aws/links";
import { APP, groupNames, parameterPaths, resourcePrefix, stageTags, tagKeys } from "./names";

/**
 * Every IAM policy a stage deploys, as plain policy documents, so that tests can read them and the
 * deploy can refuse one that breaks the rules below (`violations`).
 *
 * The rules: no `*` in an action; a `*` resource only for the few read or session actions AWS offers
 * no resource-level permission for; Auto Scaling groups changed only when they carry this app's and
 * this stage's tags; parameters changed only under the stage's own `/hearth/<stage>/` path;
 * everything else named by its ARN, within the stage.
 */

export interface Statement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: Statement[];
}

/** Where a stage lives. */
export interface Scope {
  partition: string;
  region: string;
  accountId: string;
  stage: string;
}

/** IAM's policy variable for the calling instance's ARN (EC2 sets it on instance-profile credentials). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, which IAM substitutes
export const SOURCE_INSTANCE_ARN = "${ec2:SourceInstanceARN}";

const doc = (...statements: Statement[]): PolicyDocument => ({
  Version: "2012-10-17",
  Statement: statements.filter((s) => s.Action.length > 0),
});

const arn = (scope: Scope, service: string, resource: string, region = scope.region) =>
  `arn:${scope.partition}:${service}:${region}:${scope.accountId}:${resource}`;

/** The CloudWatch log group of a Hearth function (infra creates it, with its retention). */
export const functionLogGroup = (stage: string, fn: string): string => `/${APP}/${stage}/${fn}`;

/** Actions AWS authorizes on `*` only (no resource-level permission); the only ones allowed on `*`. */
export const unscopableActions = new Set([
  "autoscaling:DescribeAutoScalingGroups",
  "autoscaling:DescribeAutoScalingInstances",
  "autoscaling:DescribeScalingActivities",
  "autoscaling:DescribeWarmPool",
  "ec2:DescribeInstances",
  "ec2:DescribeSpotInstanceRequests",
  // Session Manager and Run Command, for the instances (what AmazonSSMManagedInstanceCore grants for
  // sessions, without its ssm:GetParameter on every parameter in the account).
  "ssm:UpdateInstanceInformation",
  "ssmmessages:CreateControlChannel",
  "ssmmessages:CreateDataChannel",
  "ssmmessages:OpenControlChannel",
  "ssmmessages:OpenDataChannel",
  "ec2messages:AcknowledgeMessage",
  "ec2messages:DeleteMessage",
  "ec2messages:FailMessage",
  "ec2messages:GetEndpoint",
  "ec2messages:GetMessages",
  "ec2messages:SendReply",
]);

/** The Auto Scaling calls that change a group; only ever on this stage's tagged groups. */
export const autoScalingMutations = [
  "autoscaling:PutWarmPool",
  "autoscaling:SetDesiredCapacity",
  "autoscaling:SetInstanceProtection",
  "autoscaling:UpdateAutoScalingGroup",
];

/**
 * The DynamoDB calls Hearth's stores make: single-item reads and conditional writes and queries on the
 * table; queries and the (sparse) gsi1 scan on the indexes. No batch, transaction or table scan.
 */
export const tableActions = {
  table: [
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
  ],
  indexes: ["dynamodb:Query", "dynamodb:Scan"],
};

function tableStatements(tableArn: string): Statement[] {
  return [
    { Sid: "Table", Effect: "Allow", Action: tableActions.table, Resource: [tableArn] },
    {
      Sid: "TableIndexes",
      Effect: "Allow",
      Action: tableActions.indexes,
      Resource: [`${tableArn}/index/*`],
    },
  ];
}

const logs = (scope: Scope, fn: string): Statement => ({
  Sid: "Logs",
  Effect: "Allow",
  Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
  Resource: [`${arn(scope, "logs", `log-group:${functionLogGroup(scope.stage, fn)}`)}:*`],
});

function startScaleFleet(stateMachineArn: string | undefined): Statement {
  if (!stateMachineArn) throw new Error("this function starts ScaleFleet: its state machine ARN is needed");
  return {
    Sid: "StartScaleFleet",
    Effect: "Allow",
    Action: ["states:StartExecution"],
    Resource: [stateMachineArn],
  };
}

const describe = (sid: string, actions: string[]): Statement => ({
  Sid: sid,
  Effect: "Allow",
  Action: actions,
  Resource: ["*"],
});

/** What the control plane does with runner configs (PutParameter with Tags needs AddTagsToResource). */
export const runnerConfigActions = ["ssm:PutParameter", "ssm:AddTagsToResource", "ssm:DeleteParameter"];

/**
 * Hands slot runners' JIT configs to instances and withdraws them: on the stage's runner-config
 * subtree only, never the pools' credentials or the agent config beside it.
 */
const runnerConfigs = (scope: Scope): Statement => ({
  Sid: "RunnerConfigs",
  Effect: "Allow",
  Action: runnerConfigActions,
  Resource: [arn(scope, "ssm", `parameter${parameterPaths(scope.stage).runnerConfigs}/*`)],
});

/** The stage's Auto Scaling group ARNs, with the app and stage tags required on top. */
function scaleGroups(scope: Scope, pools: readonly string[]): Statement {
  const tags = stageTags(scope.stage);
  return {
    Sid: "ScaleOwnGroups",
    Effect: "Allow",
    Action: autoScalingMutations,
    Resource: pools.flatMap((pool) =>
      Object.values(groupNames(scope.stage, pool)).map((name) =>
        arn(scope, "autoscaling", `autoScalingGroup:*:autoScalingGroupName/${name}`),
      ),
    ),
    Condition: {
      StringEquals: Object.fromEntries(
        Object.entries(tags).map(([key, value]) => [`aws:ResourceTag/${key}`, value]),
      ),
    },
  };
}

export interface FunctionResources {
  tableArn: string;
  /**
   * The pools whose warm group Hearth keeps itself through EC2 (`warm.market: spot`): apply launches,
   * starts, stops and retires their instances; HandleInterruption and the sweep cancel their spot
   * requests before terminating them. None: no such permission at all.
   */
  keptWarmPools?: readonly string[];
  /** Needed by the functions that start ScaleFleet (the API, the tick, the poll, HandleInterruption's tasks). */
  stateMachineArn?: string;
  /** HandleInterruption's state machine: the API starts it when an agent reports a notice first. */
  interruptionMachineArn?: string;
  pools: readonly string[];
}

/** Auto Scaling changes HandleInterruption makes: an instance taken out of its group, not replaced twice. */
export const detachActions = ["autoscaling:DetachInstances"];

/** The stage's groups' instances may be detached; with the app and stage tags required on the group. */
function detachOwnInstances(scope: Scope, pools: readonly string[]): Statement {
  return { ...scaleGroups(scope, pools), Sid: "DetachOwnInstances", Action: detachActions };
}

/**
 * A detached instance of the stage is terminated once idle (a rebalance recommendation): only
 * instances carrying the stage's tags, which the launch templates put on every instance.
 */
function terminateOwnInstances(scope: Scope): Statement {
  const tags = stageTags(scope.stage);
  return {
    Sid: "TerminateOwnInstances",
    Effect: "Allow",
    Action: ["ec2:TerminateInstances"],
    Resource: [arn(scope, "ec2", "instance/*")],
    Condition: {
      StringEquals: Object.fromEntries(
        Object.entries(tags).map(([key, value]) => [`aws:ResourceTag/${key}`, value]),
      ),
    },
  };
}

/**
 * Where the pools' instance roles live (`/hearth/<stage>/`): the only roles the control plane may
 * pass to EC2, when it launches a warm group's instances from a pool's launch template.
 */
export const instanceRolePath = (stage: string): string => `/${APP}/${stage}/`;

/** The EC2 calls that launch, start, stop, retire or retag the instances of a warm group Hearth keeps. */
export const keptWarmMutations = [
  "ec2:RunInstances",
  "ec2:CreateTags",
  "ec2:DeleteTags",
  "ec2:StartInstances",
  "ec2:StopInstances",
  "ec2:TerminateInstances",
  "ec2:CancelSpotInstanceRequests",
];

const stageCondition = (scope: Scope, prefix: "aws:ResourceTag" | "aws:RequestTag") =>
  Object.fromEntries(
    Object.entries(stageTags(scope.stage)).map(([key, value]) => [`${prefix}/${key}`, value]),
  );

/** Cancels the spot requests of the stage's kept warm instances (before terminating one). */
function cancelKeptSpotRequests(scope: Scope): Statement {
  return {
    Sid: "CancelKeptSpotRequests",
    Effect: "Allow",
    Action: ["ec2:CancelSpotInstanceRequests"],
    Resource: [arn(scope, "ec2", "spot-instances-request/*")],
    Condition: { StringEquals: stageCondition(scope, "aws:ResourceTag") },
  };
}

/**
 * What apply needs to keep the given pools' warm groups through EC2. RunInstances creates the
 * instance, its volumes and its spot request only with the stage's tags on them (`aws:RequestTag`),
 * from the stage's own launch templates and security group (`aws:ResourceTag`), into a subnet, from an
 * image (its id resolved from the stage's AMI parameters) and through a network interface (no tags to
 * hold those to); tags are created only by that
 * launch (`ec2:CreateAction`); the only tag removed is `hearth:parking`; starts, stops and terminations
 * touch only the stage's warm instances of those pools; the instance roles passed are the stage's.
 */
function keepWarmGroups(scope: Scope, pools: readonly string[]): Statement[] {
  const ec2 = (resource: string) => arn(scope, "ec2", resource);
  const ownWarm = {
    ...stageCondition(scope, "aws:ResourceTag"),
    [`aws:ResourceTag/${tagKeys.pool}`]: [...pools],
    [`aws:ResourceTag/${tagKeys.group}`]: "warm",
  };
  return [
    describe("ReadKeptWarmGroups", ["ec2:DescribeInstances", "ec2:DescribeSpotInstanceRequests"]),
    {
      Sid: "LaunchKeptWarmInstances",
      Effect: "Allow",
      Action: ["ec2:RunInstances"],
      Resource: [ec2("instance/*"), ec2("volume/*"), ec2("spot-instances-request/*")],
      Condition: {
        StringEquals: {
          ...stageCondition(scope, "aws:RequestTag"),
          [`aws:RequestTag/${tagKeys.pool}`]: [...pools],
          [`aws:RequestTag/${tagKeys.group}`]: "warm",
        },
      },
    },
    {
      Sid: "LaunchFromOwnTemplates",
      Effect: "Allow",
      Action: ["ec2:RunInstances"],
      Resource: [ec2("launch-template/*"), ec2("security-group/*")],
      Condition: { StringEquals: stageCondition(scope, "aws:ResourceTag") },
    },
    {
      Sid: "LaunchIntoSubnets",
      Effect: "Allow",
      Action: ["ec2:RunInstances"],
      Resource: [
        ec2("subnet/*"),
        ec2("network-interface/*"),
        `arn:${scope.partition}:ec2:${scope.region}::image/*`,
      ],
    },
    {
      // The launch templates name their AMI as `resolve:ssm:/hearth/<stage>/ami/<arch>`: a launch
      // resolves it with the caller's permission.
      Sid: "ResolveAmiParameters",
      Effect: "Allow",
      Action: ["ssm:GetParameters"],
      Resource: [arn(scope, "ssm", `parameter${parameterPaths(scope.stage).ami("*")}`)],
    },
    {
      Sid: "TagOnLaunch",
      Effect: "Allow",
      Action: ["ec2:CreateTags"],
      Resource: [ec2("instance/*"), ec2("volume/*"), ec2("spot-instances-request/*")],
      Condition: { StringEquals: { "ec2:CreateAction": "RunInstances" } },
    },
    {
      Sid: "Unpark",
      Effect: "Allow",
      Action: ["ec2:DeleteTags"],
      Resource: [ec2("instance/*")],
      Condition: {
        StringEquals: ownWarm,
        "ForAllValues:StringEquals": { "aws:TagKeys": [tagKeys.parking] },
      },
    },
    {
      Sid: "StartStopKeptWarmInstances",
      Effect: "Allow",
      Action: ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
      Resource: [ec2("instance/*")],
      Condition: { StringEquals: ownWarm },
    },
    cancelKeptSpotRequests(scope),
    {
      // A spot launch by RunInstances needs EC2 Spot's service-linked role, AWSServiceRoleForEC2Spot
      // ("If you use the AWS CLI or an API ... you must ensure that this role exists", EC2 User
      // Guide): the first launch creates it, once per account. Only that role.
      Sid: "CreateSpotServiceLinkedRole",
      Effect: "Allow",
      Action: ["iam:CreateServiceLinkedRole"],
      Resource: [
        `arn:${scope.partition}:iam::${scope.accountId}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot`,
      ],
      Condition: { StringEquals: { "iam:AWSServiceName": "spot.amazonaws.com" } },
    },
    {
      Sid: "PassInstanceRoles",
      Effect: "Allow",
      Action: ["iam:PassRole"],
      Resource: [`arn:${scope.partition}:iam::${scope.accountId}:role${instanceRolePath(scope.stage)}*`],
      Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
    },
  ];
}

function startHandleInterruption(stateMachineArn: string | undefined): Statement {
  if (!stateMachineArn)
    throw new Error("this function starts HandleInterruption: its state machine ARN is needed");
  return {
    Sid: "StartHandleInterruption",
    Effect: "Allow",
    Action: ["states:StartExecution"],
    Resource: [stateMachineArn],
  };
}

/** The policy of one function: what its handler calls, on this stage's resources, and its own logs. */
export function functionPolicy(fn: FunctionName, scope: Scope, resources: FunctionResources): PolicyDocument {
  const table = tableStatements(resources.tableArn);
  const kept = resources.keptWarmPools ?? [];
  // Terminating a kept warm instance cancels its persistent spot request first.
  const cancelKept = kept.length ? [cancelKeptSpotRequests(scope)] : [];
  switch (fn) {
    case "api":
      // Webhooks write the ledger and start ScaleFleet; a first heartbeat asks Auto Scaling whether
      // the caller is one of the fleet's instances, and heartbeats hand runner configs to free
      // slots; the status route reads.
      return doc(
        logs(scope, fn),
        ...table,
        startScaleFleet(resources.stateMachineArn),
        startHandleInterruption(resources.interruptionMachineArn),
        describe("LookUpInstance", ["autoscaling:DescribeAutoScalingInstances", "ec2:DescribeInstances"]),
        runnerConfigs(scope),
      );
    case "observe":
      // It sees instances leave service, withdraws their runner configs and deletes their runners
      // (and retries the deletions owed for its pool).
      return doc(
        logs(scope, fn),
        ...table,
        describe("ObserveFleet", [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeWarmPool",
          "ec2:DescribeInstances",
        ]),
        runnerConfigs(scope),
      );
    case "plan":
      // Pure: it computes a plan from its input and calls nothing.
      return doc(logs(scope, fn));
    case "apply":
      return doc(
        logs(scope, fn),
        ...table,
        describe("ReadGroups", [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeScalingActivities",
        ]),
        scaleGroups(scope, resources.pools),
        ...(kept.length ? keepWarmGroups(scope, kept) : []),
      );
    case "finish":
    case "recordFailure":
      return doc(logs(scope, fn), ...table);
    case "tick":
      return doc(logs(scope, fn), ...table, startScaleFleet(resources.stateMachineArn));
    case "poll":
      // It reads and records jobs (the ledger), keeps its state, and starts ScaleFleet for what it
      // finds; the forges it polls are called with their own credentials, not AWS's.
      return doc(logs(scope, fn), ...table, startScaleFleet(resources.stateMachineArn));
    case "interruption":
      // Claim looks the instance up; Drain detaches it, starts its pool's run and retires its idle
      // runners; Settle asks EC2 whether it is gone, terminates a drained one after a rebalance
      // recommendation, and retires its runners.
      return doc(
        logs(scope, fn),
        ...table,
        startScaleFleet(resources.stateMachineArn),
        describe("LookUpInstance", ["autoscaling:DescribeAutoScalingInstances", "ec2:DescribeInstances"]),
        detachOwnInstances(scope, resources.pools),
        terminateOwnInstances(scope),
        ...cancelKept,
        runnerConfigs(scope),
      );
    case "sweep":
      // Survey reads the groups, the warm pool and the stage's tagged instances; Act takes an orphan
      // out of its group (the fleet port terminates only detached instances) and terminates it, both
      // only on the stage's tagged resources, withdraws its runners' configs; a stuck job's retry may
      // start its pool's run.
      return doc(
        logs(scope, fn),
        ...table,
        startScaleFleet(resources.stateMachineArn),
        describe("SurveyFleet", [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeWarmPool",
          "ec2:DescribeInstances",
        ]),
        detachOwnInstances(scope, resources.pools),
        terminateOwnInstances(scope),
        ...cancelKept,
        runnerConfigs(scope),
      );
  }
}

/** What Step Functions may do for a state machine: invoke its task functions, nothing else. */
export function stateMachinePolicy(functionArns: readonly string[]): PolicyDocument {
  return doc({
    Sid: "InvokeTasks",
    Effect: "Allow",
    Action: ["lambda:InvokeFunction"],
    Resource: functionArns.flatMap((fnArn) => [fnArn, `${fnArn}:*`]),
  });
}

export interface InstanceResources {
  pool: string;
  /** The binary-cache bucket's name. */
  cacheBucket: string;
}

/**
 * A pool's instance role: Session Manager (instead of SSH; the security group admits nothing), its
 * own GitHub JIT runner config, its pool's runner credentials, the agent's config, and the binary
 * cache (its bucket, and its signing key). The heartbeat route is added by `heartbeatPolicy`, once the API exists.
 *
 * A JIT config is readable only by the instance whose ARN its `hearth:instance-arn` tag holds:
 * Parameter Store has no per-caller path, so the tag carries the binding.
 */
export function instancePolicy(scope: Scope, resources: InstanceResources): PolicyDocument {
  const paths = parameterPaths(scope.stage);
  const parameter = (path: string) => arn(scope, "ssm", `parameter${path}`);
  const bucket = `arn:${scope.partition}:s3:::${resources.cacheBucket}`;
  return doc(
    describe(
      "SessionManager",
      [...unscopableActions].filter((a) => /^(ssm|ssmmessages|ec2messages):/.test(a)),
    ),
    {
      Sid: "OwnRunnerConfig",
      Effect: "Allow",
      Action: ["ssm:GetParameter", "ssm:DeleteParameter"],
      Resource: [parameter(`${paths.runnerConfigs}/*`)],
      Condition: { StringEquals: { "aws:ResourceTag/hearth:instance-arn": SOURCE_INSTANCE_ARN } },
    },
    {
      Sid: "PoolCredentials",
      Effect: "Allow",
      Action: ["ssm:GetParameter"],
      // SecureStrings under the account's aws/ssm key: its key policy lets SSM decrypt for any
      // principal of the account allowed GetParameter, so no kms:Decrypt is granted.
      Resource: [
        parameter(paths.poolCredentials(resources.pool)),
        parameter(paths.agentConfig),
        parameter(paths.binaryCacheSigningKey),
      ],
    },
    {
      Sid: "BinaryCacheBucket",
      Effect: "Allow",
      Action: ["s3:ListBucket", "s3:GetBucketLocation"],
      Resource: [bucket],
    },
    {
      Sid: "BinaryCacheObjects",
      Effect: "Allow",
      Action: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
      Resource: [`${bucket}/*`],
    },
  );
}

/** Lets a pool's instances call `POST /agent/heartbeat` (API Gateway's IAM auth), and no other route. */
export function heartbeatPolicy(scope: Scope, apiId: string): PolicyDocument {
  return doc({
    Sid: "Heartbeat",
    Effect: "Allow",
    Action: ["execute-api:Invoke"],
    Resource: [arn(scope, "execute-api", `${apiId}/*/POST/agent/heartbeat`)],
  });
}

/**
 * A role's trust policy: `service` may assume it, on behalf of this account only (the confused-deputy
 * guard; EC2 sets no source account, so instance roles go without it).
 */
export function trustPolicy(service: string, accountId?: string) {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { Service: service },
        Action: "sts:AssumeRole",
        ...(accountId ? { Condition: { StringEquals: { "aws:SourceAccount": accountId } } } : {}),
      },
    ],
  };
}

/** IAM's wildcard match (`*` any run, `?` one character), case-sensitive as ARNs are. */
export function wildcardMatch(pattern: string, value: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${source}$`, "s").test(value);
}

/** Whether some statement allows `action` (actions match case-insensitively, as IAM does) on `resource`. */
export function allows(policy: PolicyDocument, action: string, resource = "*"): boolean {
  return policy.Statement.some(
    (statement) =>
      statement.Action.some((a) => wildcardMatch(a.toLowerCase(), action.toLowerCase())) &&
      statement.Resource.some((r) => wildcardMatch(r, resource)),
  );
}

/** Parameter Store calls that change or delete a parameter; only ever within the stage's subtree. */
const ssmWrites = new Set([
  "ssm:PutParameter",
  "ssm:DeleteParameter",
  "ssm:DeleteParameters",
  "ssm:AddTagsToResource",
  "ssm:RemoveTagsFromResource",
  "ssm:LabelParameterVersion",
]);

/**
 * What breaks the least-privilege rules in `policy`, as sentences (none when it is fine). `stage`
 * scopes the names: resources must belong to this stage.
 */
export function violations(policy: PolicyDocument, stage: string): string[] {
  const found: string[] = [];
  const tags = stageTags(stage);
  for (const statement of policy.Statement) {
    const where = `statement ${statement.Sid}`;
    if (statement.Effect !== "Allow") found.push(`${where}: only Allow statements are expected`);
    for (const action of statement.Action) {
      if (action.includes("*")) found.push(`${where}: wildcard action ${action}`);
      if (statement.Resource.includes("*") && !unscopableActions.has(action)) {
        found.push(`${where}: ${action} on * (it supports resource-level permissions)`);
      }
    }
    if (statement.Resource.length === 0) found.push(`${where}: no resource`);
    for (const resource of statement.Resource) {
      if (resource !== "*" && !resource.startsWith("arn:")) found.push(`${where}: ${resource} is not an ARN`);
    }
    if (statement.Action.some((action) => ssmWrites.has(action))) {
      const subtree = `:parameter/${APP}/${stage}/`;
      if (!statement.Resource.every((r) => r.startsWith("arn:") && r.includes(subtree))) {
        found.push(`${where}: Parameter Store changes outside the stage's /${APP}/${stage}/ subtree`);
      }
    }
    if (statement.Action.some((action) => [...autoScalingMutations, ...detachActions].includes(action))) {
      const condition = statement.Condition?.StringEquals ?? {};
      for (const [key, value] of Object.entries(tags)) {
        if (condition[`aws:ResourceTag/${key}`] !== value) {
          found.push(`${where}: Auto Scaling changes without the condition ${key} = ${value}`);
        }
      }
      if (!statement.Resource.every((r) => r.includes(`autoScalingGroupName/${resourcePrefix(stage)}-`))) {
        found.push(`${where}: Auto Scaling changes on groups outside the stage`);
      }
    }
    found.push(...ec2Violations(statement, stage, where));
  }
  return found;
}

/** EC2 changes that act on existing resources: only on the stage's tagged ones. */
const taggedEc2Changes = new Set([
  "ec2:StartInstances",
  "ec2:StopInstances",
  "ec2:TerminateInstances",
  "ec2:DeleteTags",
  "ec2:CancelSpotInstanceRequests",
]);

/**
 * The rules for EC2 and role passing: what RunInstances creates carries the stage's tags, and it
 * launches only from the stage's tagged launch templates; tags are created only by a launch; other
 * changes need the stage's tags on their resource; a role is passed only to EC2, and only the stage's
 * instance roles.
 */
function ec2Violations(statement: Statement, stage: string, where: string): string[] {
  const found: string[] = [];
  const equals = statement.Condition?.StringEquals ?? {};
  const hasStageTags = (prefix: string) =>
    Object.entries(stageTags(stage)).every(([key, value]) => equals[`${prefix}/${key}`] === value);
  const has = (action: string) => statement.Action.some((a) => a.toLowerCase() === action.toLowerCase());
  if (has("ec2:RunInstances")) {
    const created = statement.Resource.filter((r) => /:(instance|volume|spot-instances-request)\//.test(r));
    if (created.length && !hasStageTags("aws:RequestTag"))
      found.push(`${where}: RunInstances creates resources without the stage's tags (aws:RequestTag)`);
    const templates = statement.Resource.filter((r) => /:(launch-template|security-group)\//.test(r));
    if (templates.length && !hasStageTags("aws:ResourceTag"))
      found.push(`${where}: RunInstances from launch templates or security groups that are not the stage's`);
    if (statement.Resource.includes("*")) found.push(`${where}: RunInstances on *`);
  }
  if (has("ec2:CreateTags") && equals["ec2:CreateAction"] !== "RunInstances")
    found.push(`${where}: CreateTags other than at launch (ec2:CreateAction = RunInstances)`);
  if (statement.Action.some((a) => taggedEc2Changes.has(a)) && !hasStageTags("aws:ResourceTag"))
    found.push(`${where}: EC2 changes without the stage's tags on the resource`);
  if (has("iam:CreateServiceLinkedRole")) {
    if (equals["iam:AWSServiceName"] !== "spot.amazonaws.com")
      found.push(`${where}: CreateServiceLinkedRole for a service other than EC2 Spot`);
    if (
      !statement.Resource.every((r) =>
        r.endsWith(":role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
      )
    )
      found.push(`${where}: CreateServiceLinkedRole of a role other than AWSServiceRoleForEC2Spot`);
  }
  if (has("iam:PassRole")) {
    if (equals["iam:PassedToService"] !== "ec2.amazonaws.com")
      found.push(`${where}: PassRole without iam:PassedToService = ec2.amazonaws.com`);
    if (!statement.Resource.every((r) => r.includes(`:role${instanceRolePath(stage)}`)))
      found.push(`${where}: PassRole of roles outside the stage's instance roles`);
  }
  return found;
}

/** Checks a policy at deploy time: a stage whose IAM breaks the rules does not deploy. */
export function checked(policy: PolicyDocument, stage: string, name: string): PolicyDocument {
  const found = violations(policy, stage);
  if (found.length) throw new Error(`IAM policy ${name} breaks least privilege:\n  ${found.join("\n  ")}`);
  return policy;
}

/** The form SST's `permissions` take (it builds the role's inline policy from them). */
export function sstPermissions(policy: PolicyDocument) {
  return policy.Statement.map((statement) => ({
    actions: statement.Action,
    resources: statement.Resource,
    conditions: Object.entries(statement.Condition ?? {}).flatMap(([test, variables]) =>
      Object.entries(variables).map(([variable, values]) => ({ test, variable, values: [values].flat() })),
    ),
  }));
}
