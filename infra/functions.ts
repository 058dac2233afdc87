import type { FunctionName, functionLinks } from "../packages/functions/src/aws/links";
import { scope, settings } from "./config";
import { functionSpecs, LOG_RETENTION_DAYS, nodejsBundle } from "./lib/functions";
import { checked, functionLogGroup, functionPolicy, sstPermissions } from "./lib/iam";
import { pascal } from "./lib/names";
import { table } from "./storage";

/**
 * How every Hearth function is made: Node 22 on arm64, the size and time limit of
 * infra/lib/functions.ts, JSON logs in its own log group, and exactly the links its handler reads.
 *
 * `links` is typed from `functionLinks`: each function must be given a component for every link its
 * handler reads, and nothing else, or infra does not type-check.
 */
type Linkable = sst.Linkable<Record<string, unknown>> | sst.Secret;
export type LinksOf<F extends FunctionName> = { [N in (typeof functionLinks)[F][number]]: Linkable };

/** Every function made so far, for the alarms (created last) to watch. */
export const deployed = new Map<FunctionName, sst.aws.Function>();

export function hearthFunction<F extends FunctionName>(
  fn: F,
  links: LinksOf<F>,
  resources: { stateMachineArn?: $util.Input<string>; interruptionMachineArn?: $util.Input<string> } = {},
): sst.aws.Function {
  const spec = functionSpecs[fn];
  const name = pascal(fn);
  // The key is the name the handler reads (`Resource.<key>`): it must be the component's own name.
  for (const [key, component] of Object.entries(links) as Array<[string, Linkable]>) {
    component.name.apply((actual) => {
      if (actual !== key) throw new Error(`${fn}: link ${key} is given the component ${actual}`);
    });
  }
  const logGroup = new aws.cloudwatch.LogGroup(`${name}Logs`, {
    name: functionLogGroup(settings.stage, fn),
    retentionInDays: LOG_RETENTION_DAYS,
  });
  // A function linked to ScaleFleet starts it: its policy names the state machine the link carries.
  const scaleFleet = (links as Record<string, Linkable>).ScaleFleet;
  const stateMachineArn =
    resources.stateMachineArn ??
    (scaleFleet && "properties" in scaleFleet
      ? (scaleFleet.properties.stateMachineArn as $util.Input<string>)
      : undefined);
  const permissions = $util
    .all([scope, table.arn, $output(stateMachineArn), $output(resources.interruptionMachineArn)])
    .apply(([where, tableArn, stateMachineArn, interruptionMachineArn]) =>
      sstPermissions(
        checked(
          functionPolicy(fn, where, {
            tableArn,
            stateMachineArn,
            interruptionMachineArn,
            pools: settings.pools.map((pool) => pool.name),
            keptWarmPools: settings.pools
              .filter((pool) => pool.warm.market === "spot")
              .map((pool) => pool.name),
          }),
          settings.stage,
          `${fn} function`,
        ),
      ),
    );
  const created = new sst.aws.Function(`${name}Function`, {
    handler: spec.handler,
    description: spec.description,
    runtime: "nodejs22.x",
    architecture: "arm64",
    memory: `${spec.memoryMB} MB`,
    timeout: `${spec.timeoutSeconds} seconds`,
    ...(spec.retries !== undefined ? { retries: spec.retries } : {}),
    link: Object.values(links),
    permissions,
    logging: { logGroup: logGroup.name, format: "json" },
    nodejs: nodejsBundle,
    environment: {
      // Powertools: the service name the metrics' `service` dimension carries.
      POWERTOOLS_SERVICE_NAME: "hearth",
      POWERTOOLS_LOG_LEVEL: settings.stage === "production" ? "INFO" : "DEBUG",
    },
    transform: {
      // Logs go to the function's own group, which `permissions` names; the managed
      // AWSLambdaBasicExecutionRole SST attaches would allow writing to any log group in the account.
      role: (args) => {
        args.managedPolicyArns = [];
      },
    },
  });
  deployed.set(fn, created);
  return created;
}
