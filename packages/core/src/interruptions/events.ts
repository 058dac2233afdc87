import * as z from "zod";
import { type Interruption, instanceIdPattern } from "../instances";

/**
 * Spot interruption notices in AWS's own shapes. EventBridge delivers two events on the default bus
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html and
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html); the agent's
 * IMDS report is the third input. Each becomes one `InterruptionNotice`.
 */

export const WARNING_DETAIL_TYPE = "EC2 Spot Instance Interruption Warning";
export const REBALANCE_DETAIL_TYPE = "EC2 Instance Rebalance Recommendation";
export const interruptionDetailTypes = [WARNING_DETAIL_TYPE, REBALANCE_DETAIL_TYPE] as const;

/** EC2 acts two minutes after the warning's time. */
export const WARNING_SECONDS = 120;
/** Events per request at most (EventBridge delivers one at a time; local mode takes a list). */
export const MAX_EVENTS = 100;

/** The notices, weakest first: a notice raises what is recorded for an instance, never lowers it. */
export const noticeKinds = ["rebalance", "warning"] as const;
export type NoticeKind = (typeof noticeKinds)[number];
export const noticeStrength = (kind: NoticeKind): number => noticeKinds.indexOf(kind) + 1;
export const noticeKindOf = (action: Interruption["action"]): NoticeKind =>
  action === "rebalance" ? "rebalance" : "warning";

export interface InterruptionNotice {
  kind: NoticeKind;
  instanceId: string;
  /** EC2's instance action (`terminate`, `stop`, `hibernate`), or `rebalance`. */
  action: Interruption["action"];
  /** When the notice was given: the event's `time`, or when the agent reported it. */
  at: string;
  /** A warning's deadline (`at` + 120 s): when EC2 acts. Null for a rebalance recommendation. */
  deadline: string | null;
  source: "eventbridge" | "agent";
}

export class InvalidInterruptionEvent extends Error {
  override name = "InvalidInterruptionEvent";
}

const isoTime = z.iso.datetime({ offset: true });
const instanceId = z.string().regex(instanceIdPattern, "not an EC2 instance id");

const envelope = z.object({
  version: z.string().max(10),
  id: z.string().min(1).max(128),
  "detail-type": z.string().max(256),
  source: z.literal("aws.ec2"),
  account: z.string().regex(/^\d{12}$/, "not an AWS account id"),
  time: isoTime,
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, "not an AWS region"),
  resources: z.array(z.string().max(512)).max(16),
  detail: z.unknown(),
});

const warningDetail = z.object({
  "instance-id": instanceId,
  "instance-action": z.enum(["terminate", "stop", "hibernate"]),
});
const rebalanceDetail = z.object({ "instance-id": instanceId });

const issueText = (error: z.ZodError) => {
  const issue = error.issues[0];
  return `${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`;
};

/** One EventBridge event as a notice; throws `InvalidInterruptionEvent` naming the problem. */
export function noticeFromEvent(event: unknown, where = "the event"): InterruptionNotice {
  const parsed = envelope.safeParse(event);
  if (!parsed.success) throw new InvalidInterruptionEvent(`${where} at ${issueText(parsed.error)}`);
  const { time, resources } = parsed.data;
  const detailType = parsed.data["detail-type"];
  const at = new Date(time).toISOString();
  let notice: InterruptionNotice;
  if (detailType === WARNING_DETAIL_TYPE) {
    const detail = warningDetail.safeParse(parsed.data.detail);
    if (!detail.success) throw new InvalidInterruptionEvent(`${where} at detail.${issueText(detail.error)}`);
    notice = {
      kind: "warning",
      instanceId: detail.data["instance-id"],
      action: detail.data["instance-action"],
      at,
      deadline: new Date(Date.parse(time) + WARNING_SECONDS * 1000).toISOString(),
      source: "eventbridge",
    };
  } else if (detailType === REBALANCE_DETAIL_TYPE) {
    const detail = rebalanceDetail.safeParse(parsed.data.detail);
    if (!detail.success) throw new InvalidInterruptionEvent(`${where} at detail.${issueText(detail.error)}`);
    notice = {
      kind: "rebalance",
      instanceId: detail.data["instance-id"],
      action: "rebalance",
      at,
      deadline: null,
      source: "eventbridge",
    };
  } else {
    throw new InvalidInterruptionEvent(
      `${where}: detail-type ${JSON.stringify(detailType.slice(0, 80))} is not one Hearth handles (${interruptionDetailTypes.map((t) => `"${t}"`).join(" or ")})`,
    );
  }
  // AWS names the instance's ARN in `resources`: an event whose resources name another is not this one.
  if (resources.length && !resources.some((arn) => arn.endsWith(`:instance/${notice.instanceId}`))) {
    throw new InvalidInterruptionEvent(`${where}: resources do not name instance ${notice.instanceId}`);
  }
  return notice;
}

/** One event or a list of them, as EventBridge (or local mode's `POST /sim/aws/events`) delivers them. */
export function parseInterruptionEvents(body: unknown): InterruptionNotice[] {
  if (Array.isArray(body)) {
    if (body.length === 0) throw new InvalidInterruptionEvent("the list holds no event");
    if (body.length > MAX_EVENTS)
      throw new InvalidInterruptionEvent(`at most ${MAX_EVENTS} events at once, not ${body.length}`);
    return body.map((event, i) => noticeFromEvent(event, `event ${i}`));
  }
  return [noticeFromEvent(body)];
}

/** The agent's own report (its heartbeat's `interruption`, from IMDS) as a notice. */
export function noticeFromReport(
  instanceId: string,
  interruption: Interruption,
  now: Date,
): InterruptionNotice {
  const kind = noticeKindOf(interruption.action);
  return {
    kind,
    instanceId,
    action: interruption.action,
    at:
      kind === "warning"
        ? new Date(Date.parse(interruption.time) - WARNING_SECONDS * 1000).toISOString()
        : now.toISOString(),
    deadline: kind === "warning" ? new Date(interruption.time).toISOString() : null,
    source: "agent",
  };
}

export const noticeSchema = z.object({
  kind: z.enum(noticeKinds),
  instanceId,
  action: z.enum(["terminate", "stop", "hibernate", "rebalance"]),
  at: isoTime,
  deadline: isoTime.nullable(),
  source: z.enum(["eventbridge", "agent"]),
});

/** EventBridge's shape of a notice, as AWS would send it (the simulated fleet sends these). */
export function interruptionEvent(input: {
  kind: NoticeKind;
  instanceId: string;
  action?: "terminate" | "stop" | "hibernate";
  /** The event's time: for a warning, two minutes before EC2 acts. */
  time: string;
  id: string;
  region?: string;
  account?: string;
}) {
  const region = input.region ?? "us-east-1";
  const account = input.account ?? "000000000000";
  return {
    version: "0",
    id: input.id,
    "detail-type": input.kind === "warning" ? WARNING_DETAIL_TYPE : REBALANCE_DETAIL_TYPE,
    source: "aws.ec2",
    account,
    time: new Date(input.time).toISOString().replace(/\.\d{3}Z$/, "Z"),
    region,
    resources: [`arn:aws:ec2:${region}:${account}:instance/${input.instanceId}`],
    detail:
      input.kind === "warning"
        ? { "instance-id": input.instanceId, "instance-action": input.action ?? "terminate" }
        : { "instance-id": input.instanceId },
  };
}
