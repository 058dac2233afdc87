import { defaultPools } from "@hearth/core/pools";
import { describe, expect, it } from "vitest";
import { functionNames } from "../../packages/functions/src/aws/links";
import { signingKeyParameter } from "../lib/fleet";
import {
  allows,
  autoScalingMutations,
  functionLogGroup,
  functionPolicy,
  heartbeatPolicy,
  instancePolicy,
  instanceRolePath,
  keptWarmMutations,
  type PolicyDocument,
  runnerConfigActions,
  type Scope,
  SOURCE_INSTANCE_ARN,
  sstPermissions,
  stateMachinePolicy,
  trustPolicy,
  unscopableActions,
  violations,
  wildcardMatch,
} from "../lib/iam";
import { groupNames } from "../lib/names";

const scope: Scope = { partition: "aws", region: "eu-west-1", accountId: "123456789012", stage: "prod" };
const tableArn = "arn:aws:dynamodb:eu-west-1:123456789012:table/hearth-prod-TableTable-abc";
const stateMachineArn = "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-prod-scale-fleet";
const pools = defaultPools.map((pool) => pool.name);
const interruptionMachineArn =
  "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-prod-handle-interruption";
const policyOf = (fn: (typeof functionNames)[number]) =>
  functionPolicy(fn, scope, { tableArn, stateMachineArn, interruptionMachineArn, pools });
const groupArn = (name: string, uuid = "8d0cbcd8-7b1b-4c5e-9f0e-000000000000") =>
  `arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:${uuid}:autoScalingGroupName/${name}`;
const actionsOf = (policy: PolicyDocument) => policy.Statement.flatMap((statement) => statement.Action);

describe("IAM wildcard matching", () => {
  it("matches * and ? as IAM does, and nothing else", () => {
    expect(wildcardMatch("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b")).toBe(true);
    expect(wildcardMatch("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket2/a")).toBe(false);
    expect(wildcardMatch("a?c", "abc")).toBe(true);
    expect(wildcardMatch("a.c", "abc")).toBe(false);
    expect(wildcardMatch("arn:aws:ssm:*:*:parameter/x", "arn:aws:ssm:r:1:parameter/x")).toBe(true);
  });
});

describe("the least-privilege check", () => {
  const bad = (statement: Partial<PolicyDocument["Statement"][number]>): PolicyDocument => ({
    Version: "2012-10-17",
    Statement: [{ Sid: "Bad", Effect: "Allow", Action: [], Resource: [], ...statement }],
  });

  it("catches wildcard actions, scopable actions on *, and untagged Auto Scaling changes", () => {
    expect(violations(bad({ Action: ["*"], Resource: ["*"] }), "prod").join()).toMatch(/wildcard action \*/);
    expect(violations(bad({ Action: ["dynamodb:*"], Resource: [tableArn] }), "prod").join()).toMatch(
      /wildcard action dynamodb:\*/,
    );
    expect(violations(bad({ Action: ["dynamodb:PutItem"], Resource: ["*"] }), "prod").join()).toMatch(
      /dynamodb:PutItem on \*/,
    );
    expect(
      violations(
        bad({ Action: ["autoscaling:SetDesiredCapacity"], Resource: [groupArn("hearth-prod-x-warm")] }),
        "prod",
      ).length,
    ).toBe(2);
    const otherStage = bad({
      Action: ["autoscaling:SetDesiredCapacity"],
      Resource: [groupArn("hearth-dev-x-warm")],
      Condition: {
        StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
      },
    });
    expect(violations(otherStage, "prod")).toEqual([
      "statement Bad: Auto Scaling changes on groups outside the stage",
    ]);
    expect(violations(bad({ Action: ["s3:GetObject"], Resource: ["bucket/*"] }), "prod").join()).toMatch(
      /not an ARN/,
    );
  });

  it("catches Parameter Store changes outside the stage's subtree", () => {
    const parameter = (path: string) => `arn:aws:ssm:eu-west-1:123456789012:parameter${path}`;
    for (const resource of [
      parameter("/hearth/dev/runners/*"),
      parameter("/payments/db"),
      parameter("/hearth/prodx/runners/*"),
      parameter("*"),
    ]) {
      expect(violations(bad({ Action: ["ssm:DeleteParameter"], Resource: [resource] }), "prod")).toEqual([
        "statement Bad: Parameter Store changes outside the stage's /hearth/prod/ subtree",
      ]);
    }
    expect(
      violations(
        bad({ Action: ["ssm:PutParameter"], Resource: [parameter("/hearth/prod/runners/*")] }),
        "prod",
      ),
    ).toEqual([]);
  });
});

describe("function policies", () => {
  it.each(functionNames)("%s: passes the least-privilege check", (fn) => {
    expect(violations(policyOf(fn), "prod")).toEqual([]);
  });

  it.each(functionNames)("%s: writes only to its own log group", (fn) => {
    const logs = policyOf(fn).Statement.find((statement) => statement.Sid === "Logs");
    expect(logs?.Action).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    expect(logs?.Resource).toEqual([
      `arn:aws:logs:eu-west-1:123456789012:log-group:${functionLogGroup("prod", fn)}:*`,
    ]);
    expect(functionLogGroup("prod", fn)).toBe(`/hearth/prod/${fn}`);
  });

  it("gives the poll its logs, the table and ScaleFleet, and nothing of the fleet", () => {
    const poll = policyOf("poll");
    expect(poll.Statement.map((statement) => statement.Sid)).toEqual(
      policyOf("tick").Statement.map((statement) => statement.Sid),
    );
    expect(actionsOf(poll).some((action) => /^(ec2|autoscaling|ssm):/.test(action))).toBe(false);
    expect(() => functionPolicy("poll", scope, { tableArn, pools })).toThrow(/state machine ARN/);
  });

  it("gives the planner nothing but its logs: it is a pure function", () => {
    expect(actionsOf(policyOf("plan"))).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
  });

  it("lets only apply change Auto Scaling groups, and only this stage's, tagged for this app and stage", () => {
    for (const fn of functionNames) {
      const changes = actionsOf(policyOf(fn)).filter((action) => autoScalingMutations.includes(action));
      expect(changes.length > 0, fn).toBe(fn === "apply");
    }
    const apply = policyOf("apply");
    const statement = apply.Statement.find((s) => s.Action.includes("autoscaling:SetDesiredCapacity"));
    expect(statement?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
    });
    for (const pool of pools) {
      for (const name of Object.values(groupNames("prod", pool))) {
        for (const action of autoScalingMutations) expect(allows(apply, action, groupArn(name))).toBe(true);
      }
    }
    // Another stage's group, or a group that is not Hearth's, is out of reach.
    expect(allows(apply, "autoscaling:SetDesiredCapacity", groupArn("hearth-dev-x86_64-warm"))).toBe(false);
    expect(allows(apply, "autoscaling:SetDesiredCapacity", groupArn("payments-prod"))).toBe(false);
    expect(allows(apply, "autoscaling:DeleteAutoScalingGroup", groupArn("hearth-prod-x86_64-warm"))).toBe(
      false,
    );
  });

  it("lets the API, the tick, the poll, HandleInterruption and the sweep start ScaleFleet, and only the API start HandleInterruption", () => {
    for (const fn of functionNames) {
      expect(allows(policyOf(fn), "states:StartExecution", stateMachineArn), fn).toBe(
        fn === "api" || fn === "tick" || fn === "poll" || fn === "interruption" || fn === "sweep",
      );
      expect(allows(policyOf(fn), "states:StartExecution", interruptionMachineArn), fn).toBe(fn === "api");
    }
    expect(allows(policyOf("api"), "states:StartExecution", `${stateMachineArn}-other`)).toBe(false);
    expect(() => functionPolicy("tick", scope, { tableArn, pools })).toThrow(/state machine ARN/);
  });

  it("lets the API, observe, HandleInterruption and the sweep hand and withdraw runner configs, on the stage's subtree only", () => {
    const parameter = (path: string) => `arn:aws:ssm:eu-west-1:123456789012:parameter${path}`;
    const config = parameter("/hearth/prod/runners/i-0123456789abcdef0/1-4242");
    for (const fn of functionNames) {
      for (const action of runnerConfigActions) {
        expect(allows(policyOf(fn), action, config), `${fn} ${action}`).toBe(
          fn === "api" || fn === "observe" || fn === "interruption" || fn === "sweep",
        );
      }
    }
    const api = policyOf("api");
    for (const outside of [
      "/hearth/prod/pools/x86_64/credentials",
      "/hearth/prod/agent",
      "/hearth/prod/ami/x86_64",
      "/hearth/dev/runners/i-0123456789abcdef0/1-4242",
      "/hearth/prod/runners-other/x",
    ]) {
      for (const action of runnerConfigActions) expect(allows(api, action, parameter(outside))).toBe(false);
    }
    // It writes configs; reading them is the instances' alone.
    expect(allows(api, "ssm:GetParameter", config)).toBe(false);
    expect(allows(api, "ssm:PutParameter", parameter("/hearth/prod/runners"))).toBe(false);
  });

  it("grants the table's item calls on the table and its indexes only, never a batch, transaction or table scan", () => {
    const api = policyOf("api");
    for (const action of ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"]) {
      expect(allows(api, `dynamodb:${action}`, tableArn)).toBe(true);
    }
    expect(allows(api, "dynamodb:Scan", `${tableArn}/index/gsi1`)).toBe(true);
    expect(allows(api, "dynamodb:Scan", tableArn)).toBe(false);
    expect(allows(api, "dynamodb:PutItem", `${tableArn}/index/gsi1`)).toBe(false);
    for (const action of ["BatchWriteItem", "TransactWriteItems", "DeleteTable", "UpdateTable"]) {
      expect(allows(api, `dynamodb:${action}`, tableArn)).toBe(false);
    }
    expect(allows(api, "dynamodb:GetItem", tableArn.replace("prod", "dev"))).toBe(false);
  });

  it("uses * only for the describe calls that have no resource-level permission", () => {
    for (const fn of functionNames) {
      for (const statement of policyOf(fn).Statement.filter((s) => s.Resource.includes("*"))) {
        for (const action of statement.Action) expect(unscopableActions.has(action), action).toBe(true);
        expect(statement.Action.every((action) => /:Describe/.test(action))).toBe(true);
      }
    }
  });
});

describe("HandleInterruption's permissions", () => {
  const policy = policyOf("interruption");
  const instance = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0";

  it("detach only the stage's groups' instances, tagged for this app and stage, and nothing else changes a group", () => {
    for (const pool of pools) {
      for (const name of Object.values(groupNames("prod", pool))) {
        expect(allows(policy, "autoscaling:DetachInstances", groupArn(name))).toBe(true);
      }
    }
    expect(allows(policy, "autoscaling:DetachInstances", groupArn("hearth-dev-x86_64-burst"))).toBe(false);
    expect(allows(policy, "autoscaling:DetachInstances", groupArn("payments-prod"))).toBe(false);
    const detach = policy.Statement.find((s) => s.Action.includes("autoscaling:DetachInstances"));
    expect(detach?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
    });
    for (const action of autoScalingMutations)
      expect(allows(policy, action, groupArn("hearth-prod-x86_64-burst"))).toBe(false);
    for (const fn of functionNames) {
      if (fn !== "interruption" && fn !== "sweep")
        expect(
          allows(policyOf(fn), "autoscaling:DetachInstances", groupArn("hearth-prod-x86_64-burst")),
          fn,
        ).toBe(false);
    }
  });

  it("terminate only instances carrying the stage's tags; no other function but the sweep terminates anything", () => {
    const terminate = policy.Statement.find((s) => s.Action.includes("ec2:TerminateInstances"));
    expect(terminate?.Resource).toEqual(["arn:aws:ec2:eu-west-1:123456789012:instance/*"]);
    expect(terminate?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
    });
    for (const fn of functionNames) {
      expect(allows(policyOf(fn), "ec2:TerminateInstances", instance), fn).toBe(
        fn === "interruption" || fn === "sweep",
      );
    }
  });

  it("the check refuses a detach without the stage's tags, so the statement above is held to it", () => {
    const unguarded: PolicyDocument = {
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "Detach",
          Effect: "Allow",
          Action: ["autoscaling:DetachInstances"],
          Resource: [groupArn("hearth-prod-x86_64-burst")],
        },
      ],
    };
    expect(violations(unguarded, "prod").join()).toMatch(/Auto Scaling changes without the condition/);
  });
});

describe("a warm group Hearth keeps through EC2 (warm.market: spot)", () => {
  const keptWarmPools = ["x86_64"];
  const keptPolicyOf = (fn: (typeof functionNames)[number]) =>
    functionPolicy(fn, scope, { tableArn, stateMachineArn, interruptionMachineArn, pools, keptWarmPools });
  const ec2 = (resource: string) => `arn:aws:ec2:eu-west-1:123456789012:${resource}`;
  const statementOf = (policy: PolicyDocument, sid: string) => policy.Statement.find((s) => s.Sid === sid);

  it.each(functionNames)("%s: passes the least-privilege check", (fn) => {
    expect(violations(keptPolicyOf(fn), "prod")).toEqual([]);
  });

  it("gives no function any of it while no pool keeps its warm group so", () => {
    for (const fn of functionNames) {
      const actions = actionsOf(policyOf(fn));
      for (const action of keptWarmMutations.filter((a) => a !== "ec2:TerminateInstances"))
        expect(actions, fn).not.toContain(action);
      expect(actions, fn).not.toContain("iam:PassRole");
    }
  });

  it("lets apply launch, start, stop and retire only the stage's warm instances of those pools", () => {
    const apply = keptPolicyOf("apply");
    for (const action of keptWarmMutations) expect(actionsOf(apply), action).toContain(action);
    expect(statementOf(apply, "LaunchKeptWarmInstances")?.Condition).toEqual({
      StringEquals: {
        "aws:RequestTag/hearth:app": "hearth",
        "aws:RequestTag/hearth:stage": "prod",
        "aws:RequestTag/hearth:pool": ["x86_64"],
        "aws:RequestTag/hearth:group": "warm",
      },
    });
    expect(statementOf(apply, "LaunchFromOwnTemplates")?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
    });
    expect(statementOf(apply, "TagOnLaunch")?.Condition).toEqual({
      StringEquals: { "ec2:CreateAction": "RunInstances" },
    });
    const ownWarm = {
      "aws:ResourceTag/hearth:app": "hearth",
      "aws:ResourceTag/hearth:stage": "prod",
      "aws:ResourceTag/hearth:pool": ["x86_64"],
      "aws:ResourceTag/hearth:group": "warm",
    };
    expect(statementOf(apply, "StartStopKeptWarmInstances")).toMatchObject({
      Action: ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
      Resource: [ec2("instance/*")],
      Condition: { StringEquals: ownWarm },
    });
    // The one tag it removes: hearth:parking.
    expect(statementOf(apply, "Unpark")?.Condition).toEqual({
      StringEquals: ownWarm,
      "ForAllValues:StringEquals": { "aws:TagKeys": ["hearth:parking"] },
    });
    expect(statementOf(apply, "CancelKeptSpotRequests")).toMatchObject({
      Resource: [ec2("spot-instances-request/*")],
      Condition: {
        StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
      },
    });
    // The templates' AMI parameters resolve at launch; nothing else of Parameter Store is read.
    const parameter = (path: string) => `arn:aws:ssm:eu-west-1:123456789012:parameter${path}`;
    expect(allows(apply, "ssm:GetParameters", parameter("/hearth/prod/ami/x86_64"))).toBe(true);
    expect(allows(apply, "ssm:GetParameters", parameter("/hearth/prod/pools/x86_64/credentials"))).toBe(
      false,
    );
    expect(allows(apply, "ssm:GetParameters", parameter("/hearth/dev/ami/x86_64"))).toBe(false);
    // Only the stage's instance roles, and only to EC2.
    expect(instanceRolePath("prod")).toBe("/hearth/prod/");
    const role = (path: string) => `arn:aws:iam::123456789012:role${path}Pool-abc`;
    expect(allows(apply, "iam:PassRole", role("/hearth/prod/"))).toBe(true);
    expect(allows(apply, "iam:PassRole", role("/hearth/dev/"))).toBe(false);
    expect(allows(apply, "iam:PassRole", role("/"))).toBe(false);
    expect(statementOf(apply, "PassInstanceRoles")?.Condition).toEqual({
      StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" },
    });
    // EC2 Spot's service-linked role, which a spot launch needs, and no other.
    const spotRole =
      "arn:aws:iam::123456789012:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot";
    expect(allows(apply, "iam:CreateServiceLinkedRole", spotRole)).toBe(true);
    expect(
      allows(
        apply,
        "iam:CreateServiceLinkedRole",
        "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
      ),
    ).toBe(false);
    expect(statementOf(apply, "CreateSpotServiceLinkedRole")?.Condition).toEqual({
      StringEquals: { "iam:AWSServiceName": "spot.amazonaws.com" },
    });
    // Nothing else launches or passes roles.
    for (const fn of functionNames.filter((f) => f !== "apply")) {
      expect(allows(keptPolicyOf(fn), "ec2:RunInstances", ec2("instance/*")), fn).toBe(false);
      expect(allows(keptPolicyOf(fn), "iam:PassRole", role("/hearth/prod/")), fn).toBe(false);
    }
  });

  it("lets HandleInterruption and the sweep cancel a kept instance's spot request before terminating it", () => {
    for (const fn of functionNames) {
      expect(
        allows(keptPolicyOf(fn), "ec2:CancelSpotInstanceRequests", ec2("spot-instances-request/sir-1")),
        fn,
      ).toBe(fn === "apply" || fn === "interruption" || fn === "sweep");
    }
  });

  it("the check refuses untagged launches, tags made after launch, untagged starts and any role passed", () => {
    const policy = (
      statement: Omit<PolicyDocument["Statement"][number], "Sid" | "Effect">,
    ): PolicyDocument => ({
      Version: "2012-10-17",
      Statement: [{ Sid: "Bad", Effect: "Allow", ...statement }],
    });
    expect(
      violations(policy({ Action: ["ec2:RunInstances"], Resource: [ec2("instance/*")] }), "prod").join(),
    ).toMatch(/without the stage's tags \(aws:RequestTag\)/);
    expect(
      violations(
        policy({ Action: ["ec2:RunInstances"], Resource: [ec2("launch-template/*")] }),
        "prod",
      ).join(),
    ).toMatch(/launch templates or security groups that are not the stage's/);
    expect(
      violations(policy({ Action: ["ec2:CreateTags"], Resource: [ec2("instance/*")] }), "prod").join(),
    ).toMatch(/CreateTags other than at launch/);
    for (const action of [
      "ec2:StartInstances",
      "ec2:StopInstances",
      "ec2:DeleteTags",
      "ec2:CancelSpotInstanceRequests",
    ]) {
      expect(
        violations(policy({ Action: [action], Resource: [ec2("instance/*")] }), "prod").join(),
        action,
      ).toMatch(/EC2 changes without the stage's tags/);
    }
    expect(
      violations(
        policy({ Action: ["iam:PassRole"], Resource: ["arn:aws:iam::123456789012:role/admin"] }),
        "prod",
      ),
    ).toEqual([
      "statement Bad: PassRole without iam:PassedToService = ec2.amazonaws.com",
      "statement Bad: PassRole of roles outside the stage's instance roles",
    ]);
    expect(
      violations(
        policy({
          Action: ["iam:CreateServiceLinkedRole"],
          Resource: ["arn:aws:iam::123456789012:role/admin"],
        }),
        "prod",
      ),
    ).toEqual([
      "statement Bad: CreateServiceLinkedRole for a service other than EC2 Spot",
      "statement Bad: CreateServiceLinkedRole of a role other than AWSServiceRoleForEC2Spot",
    ]);
  });
});

describe("the instance role", () => {
  const policy = instancePolicy(scope, { pool: "x86_64", cacheBucket: "hearth-prod-cache" });

  it("passes the least-privilege check", () => {
    expect(violations(policy, "prod")).toEqual([]);
  });

  it("opens sessions through SSM without AmazonSSMManagedInstanceCore's GetParameter on everything", () => {
    expect(allows(policy, "ssmmessages:OpenDataChannel")).toBe(true);
    expect(allows(policy, "ssm:UpdateInstanceInformation")).toBe(true);
    expect(
      allows(policy, "ssm:GetParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/payments/db"),
    ).toBe(false);
  });

  it("reads its own JIT runner config only, bound by the parameter's instance tag", () => {
    expect(SOURCE_INSTANCE_ARN).toBe(["$", "{ec2:SourceInstanceARN}"].join(""));
    const jit = policy.Statement.find((s) => s.Sid === "OwnRunnerConfig");
    expect(jit?.Resource).toEqual(["arn:aws:ssm:eu-west-1:123456789012:parameter/hearth/prod/runners/*"]);
    expect(jit?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:instance-arn": SOURCE_INSTANCE_ARN },
    });
    expect(jit?.Action).toEqual(["ssm:GetParameter", "ssm:DeleteParameter"]);
    // The name the control plane gives a slot runner's config is under it.
    const config =
      "arn:aws:ssm:eu-west-1:123456789012:parameter/hearth/prod/runners/i-0123456789abcdef0/0-123";
    expect(allows(policy, "ssm:GetParameter", config)).toBe(true);
    expect(allows(policy, "ssm:PutParameter", config)).toBe(false);
  });

  it("reads its pool's credentials and the agent config, not another pool's or stage's", () => {
    const parameter = (path: string) => `arn:aws:ssm:eu-west-1:123456789012:parameter${path}`;
    expect(allows(policy, "ssm:GetParameter", parameter("/hearth/prod/pools/x86_64/credentials"))).toBe(true);
    expect(allows(policy, "ssm:GetParameter", parameter("/hearth/prod/agent"))).toBe(true);
    expect(allows(policy, "ssm:GetParameter", parameter("/hearth/prod/pools/aarch64/credentials"))).toBe(
      false,
    );
    expect(allows(policy, "ssm:GetParameter", parameter("/hearth/dev/pools/x86_64/credentials"))).toBe(false);
    expect(allows(policy, "ssm:PutParameter", parameter("/hearth/prod/pools/x86_64/credentials"))).toBe(
      false,
    );
  });

  it("reads the stage's binary cache signing key, the parameter infra writes it to, and not another stage's", () => {
    const parameter = (path: string) => `arn:aws:ssm:eu-west-1:123456789012:parameter${path}`;
    const key = signingKeyParameter("prod");
    expect(key).toMatchObject({ name: "/hearth/prod/binary-cache/signing-key", type: "SecureString" });
    expect(allows(policy, "ssm:GetParameter", parameter(key.name))).toBe(true);
    expect(allows(policy, "ssm:GetParameter", parameter(signingKeyParameter("dev").name))).toBe(false);
    expect(allows(policy, "ssm:PutParameter", parameter(key.name))).toBe(false);
    // The aws/ssm key's policy decrypts for SSM on the account's behalf: no KMS grant is needed or given.
    expect(actionsOf(policy).filter((action) => action.startsWith("kms:"))).toEqual([]);
  });

  it("reads and writes the binary cache, and no other bucket", () => {
    expect(allows(policy, "s3:GetObject", "arn:aws:s3:::hearth-prod-cache/nar/abc.nar.xz")).toBe(true);
    expect(allows(policy, "s3:PutObject", "arn:aws:s3:::hearth-prod-cache/abc.narinfo")).toBe(true);
    expect(allows(policy, "s3:ListBucket", "arn:aws:s3:::hearth-prod-cache")).toBe(true);
    expect(allows(policy, "s3:GetObject", "arn:aws:s3:::other-bucket/x")).toBe(false);
    expect(allows(policy, "s3:DeleteObject", "arn:aws:s3:::hearth-prod-cache/x")).toBe(false);
  });

  it("may call the heartbeat route, and no other route of the API", () => {
    const heartbeat = heartbeatPolicy(scope, "a1b2c3");
    expect(violations(heartbeat, "prod")).toEqual([]);
    const route = (path: string) => `arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/$default/${path}`;
    expect(allows(heartbeat, "execute-api:Invoke", route("POST/agent/heartbeat"))).toBe(true);
    expect(allows(heartbeat, "execute-api:Invoke", route("GET/api/status"))).toBe(false);
    expect(allows(heartbeat, "execute-api:Invoke", route("POST/webhooks/github"))).toBe(false);
  });
});

describe("the ScaleFleet role", () => {
  const arns = ["observe", "plan"].map((name) => `arn:aws:lambda:eu-west-1:123456789012:function:${name}`);

  it("invokes the given task functions (and their versions) only", () => {
    const policy = stateMachinePolicy(arns);
    expect(violations(policy, "prod")).toEqual([]);
    expect(allows(policy, "lambda:InvokeFunction", arns[0])).toBe(true);
    expect(allows(policy, "lambda:InvokeFunction", `${arns[1]}:$LATEST`)).toBe(true);
    expect(allows(policy, "lambda:InvokeFunction", `${arns[0]}x`)).toBe(false);
  });

  it("is assumable by Step Functions for this account only", () => {
    expect(trustPolicy("states.amazonaws.com", "123456789012").Statement[0]).toEqual({
      Effect: "Allow",
      Principal: { Service: "states.amazonaws.com" },
      Action: "sts:AssumeRole",
      Condition: { StringEquals: { "aws:SourceAccount": "123456789012" } },
    });
  });
});

describe("SST permissions", () => {
  it("carry every statement's actions, resources and conditions", () => {
    const permissions = sstPermissions(policyOf("apply"));
    const scale = permissions.find((p) => p.actions.includes("autoscaling:PutWarmPool"));
    expect(scale?.conditions).toEqual([
      { test: "StringEquals", variable: "aws:ResourceTag/hearth:app", values: ["hearth"] },
      { test: "StringEquals", variable: "aws:ResourceTag/hearth:stage", values: ["prod"] },
    ]);
    expect(permissions.flatMap((p) => p.actions)).toEqual(actionsOf(policyOf("apply")));
  });
});
