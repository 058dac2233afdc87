import { api } from "./api";
import { scope, settings } from "./config";
import { deployed } from "./functions";
import { alarmEventPattern, alarms } from "./lib/alarms";
import { pascal, stageTags } from "./lib/names";
import { scaleFleet } from "./workflows";

/**
 * The stage's alarms (thresholds and reasons in infra/lib/alarms.ts). Every state change goes to the
 * alarm topic, by email when the stage configures an address; CloudWatch also puts each change on the
 * default event bus (`eventPattern` matches this stage's), for teams that route alarms elsewhere.
 */
export const topic = new sst.aws.SnsTopic("Alarms");

if (settings.alarms.email) {
  new aws.sns.TopicSubscription("AlarmEmail", {
    topic: topic.arn,
    protocol: "email",
    endpoint: settings.alarms.email,
  });
}

const definitions = alarms(settings, {
  apiId: api.nodes.api.id,
  functions: Object.fromEntries([...deployed].map(([fn, created]) => [fn, created.name])),
  stateMachineArn: scaleFleet.arn,
});

for (const alarm of definitions) {
  const metricQueries = alarm.expression
    ? [
        ...alarm.metrics.map((metric) => ({
          id: metric.id,
          returnData: false,
          metric: {
            namespace: metric.namespace,
            metricName: metric.metricName,
            dimensions: metric.dimensions,
            stat: metric.stat,
            period: metric.period,
          },
        })),
        { ...alarm.expression, returnData: true },
      ]
    : undefined;
  const [single] = alarm.metrics;
  new aws.cloudwatch.MetricAlarm(`Alarm${pascal(alarm.key)}`, {
    name: alarm.name,
    alarmDescription: alarm.description,
    comparisonOperator: alarm.comparisonOperator,
    threshold: alarm.threshold,
    evaluationPeriods: alarm.evaluationPeriods,
    datapointsToAlarm: alarm.datapointsToAlarm,
    treatMissingData: alarm.treatMissingData,
    alarmActions: [topic.arn],
    okActions: [topic.arn],
    ...(metricQueries
      ? { metricQueries }
      : {
          namespace: single?.namespace,
          metricName: single?.metricName,
          dimensions: single?.dimensions,
          statistic: single?.stat,
          period: single?.period,
        }),
    tags: stageTags(settings.stage),
  });
}

export const eventPattern = scope.apply((where) =>
  alarmEventPattern(settings.stage, where.region, where.accountId, where.partition),
);
