import { readSettings } from "@hearth/core/config";
import { instanceFromAssumedRoleArn } from "@hearth/core/heartbeat";
import { routeJob } from "@hearth/core/pools";
import { leaseNotices, requestScale } from "@hearth/core/scaling";
import { type Context, Hono } from "hono";
import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { createApp } from "../../app";
import { secretValue } from "../links";
import { type AwsRuntime, createAwsRuntime, executionName } from "../runtime";

/**
 * The API Lambda behind API Gateway: `POST /webhooks/{github,gitlab}`, `GET /api/status` and
 * `POST /agent/heartbeat` (IAM-authenticated by API Gateway). One Hono app, as in local mode.
 *
 * It records and answers; it does no work after answering, because Lambda freezes a function once it
 * has answered. GitLab tag lookups therefore happen in ScaleFleet's Observe and in the minute tick.
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
  const pools = runtime.pools();
  const deps = runtime.scalingDeps;
  // Which run holds a pool, when a webhook starts none: once a minute per pool and container.
  const leaseHeld = leaseNotices(deps, (fields) =>
    runtime.log.info("a ScaleFleet run already holds the pool's lease; it scales for this job", fields),
  );

  const app = createApp({
    ledger: runtime.ledger(),
    log: runtime.log,
    now: runtime.now,
    github: { secret: settings.GITHUB_WEBHOOK_SECRET },
    gitlab: {
      token: settings.GITLAB_WEBHOOK_TOKEN,
      signingToken: settings.GITLAB_SIGNING_TOKEN,
      api: undefined,
    },
    // Nothing may run after the answer in Lambda; the app is told so by never being given a way to.
    background: () => {},
    onJobQueued: async (job) => {
      const route = routeJob(job, pools);
      if (!("pool" in route)) return;
      const outcome = await requestScale(
        deps,
        route.pool,
        runtime.startScaleFleet(),
        executionName(route.pool),
      );
      runtime.log.info("scale requested", { pool: route.pool, job: job.id, outcome });
      if (outcome === "running") await leaseHeld(route.pool);
    },
    agent: {
      registry: runtime.registry(),
      ledger: runtime.ledger(),
      journal: runtime.journal(),
      fleet: runtime.fleet(),
      pools,
      identify: (c) => callerInstance(c as Context<{ Bindings: Bindings }>),
    },
    status: {
      pools,
      ledger: runtime.ledger(),
      registry: runtime.registry(),
      journal: runtime.journal(),
      poolStates: runtime.poolStates(),
      now: runtime.now,
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
