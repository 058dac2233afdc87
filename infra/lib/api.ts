/**
 * The API's routes. Each reaches the API function; only the heartbeat requires IAM (SigV4) auth, the
 * webhooks authenticate by their secrets and the status by its token, in the function.
 */
export const apiRoutes = [
  { route: "POST /webhooks/github", iam: false },
  { route: "POST /webhooks/gitlab", iam: false },
  { route: "GET /api/status", iam: false },
  // The status page's CORS preflight (the page is on another origin and sends a token header).
  { route: "OPTIONS /api/status", iam: false },
  { route: "POST /agent/heartbeat", iam: true },
] as const;
