import { readSettings } from "@hearth/core/config";
import { instanceFromAssumedRoleArn } from "@hearth/core/heartbeat";
import { type Context, Hono } from "hono";
import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { secretValue } from "../links";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * The API Lambda behind API Gateway: `POST /webhooks/{github,gitlab}`, `GET /api/status` and
 * `POST /agent/heartbeat` (IAM-authenticated by API Gateway). One Hono app, as in local mode.
 *
 * It does no work after answering, because Lambda freezes a function once it has answered: a GitLab
 * job whose Job Hook does not carry its tags has them looked up before the answer, within
 * `TAG_LOOKUP_BUDGET_MS`, so that its own pool is asked for capacity (core's `afterJobRecorded`).
 */

type Bindings = { event: LambdaEvent; lambdaContext?: LambdaContext };

/**
 * The instance behind an IAM-signed request: API Gateway puts the caller's assumed-role ARN in the
 * request context, and an instance profile's session is named after its instance id.
 */
export function callerInstance(c: Context<{ Bindings: Bindings }>): string | null {
  const context = c.env?.event?.requestContext as
    | { authorizer?: { iam?: { userArn?: unknown } } }
    | undefined;
  const arn = context?.authorizer?.iam?.userArn;
  return typeof arn === "string" ? instanceFromAssumedRoleArn(arn) : null;
}

export function createApiHandler(runtime: AwsRuntime = createAwsRuntime()) {
  const secret = (
    name: "GithubWebhookSecret" | "GitlabWebhookToken" | "GitlabSigningToken" | "StatusToken",
  ) => secretValue(runtime.link(name));
  // The same checks as local mode's settings (a signing token must look like GitLab's `whsec_…`).
  const settings = readSettings({
    GITHUB_WEBHOOK_SECRET: secret("GithubWebhookSecret"),
    GITLAB_WEBHOOK_TOKEN: secret("GitlabWebhookToken"),
    GITLAB_SIGNING_TOKEN: secret("GitlabSigningToken"),
    STATUS_TOKEN: secret("StatusToken"),
  });
  const statusToken = settings.STATUS_TOKEN;
  if (!statusToken) throw new Error("StatusToken is empty: a deployed status API must require a token");

  const app = runtime.hearth.app({
    secrets: {
      githubWebhookSecret: settings.GITHUB_WEBHOOK_SECRET,
      gitlabWebhookToken: settings.GITLAB_WEBHOOK_TOKEN,
      gitlabSigningToken: settings.GITLAB_SIGNING_TOKEN,
    },
    identify: (c) => callerInstance(c as Context<{ Bindings: Bindings }>),
    // API Gateway's IAM authorization answers unsigned requests itself (403): a caller that gets
    // here is signed, as a principal that is not an instance.
    unidentified: 403,
    status: {
      stage: runtime.stage(),
      token: statusToken,
      // The page is a static site on its own CloudFront origin; it sends the token in a header and
      // never cookies, so any origin may read the status it holds the token for.
      allowOrigin: "*",
    },
  });

  // Webhook outcomes become metrics (the rejection-rate alarm); everything else passes straight on.
  const outer = new Hono<{ Bindings: Bindings }>();
  outer.use("/webhooks/*", async (c, next) => {
    await next();
    runtime.metrics().webhook(c.res.status);
  });
  outer.all("*", (c) => app.fetch(c.req.raw, c.env));

  const honoHandler = handle(outer);
  return async (event: LambdaEvent, context: LambdaContext) => {
    runtime.logger.addContext(context);
    return honoHandler(event, context);
  };
}
