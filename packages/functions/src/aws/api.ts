import { createApiHandler } from "./handlers/api";

/**
 * Lambda entry: the API (`POST /webhooks/{github,gitlab}`, `GET /api/status`, `POST /agent/heartbeat`).
 * Built once per container, in the init phase, from the function's SST links.
 */
export const handler = createApiHandler();
