import { createPollHandler } from "./handlers/poll";

/** Lambda entry: polling for missed webhooks, invoked by EventBridge Scheduler. */
export const handler = createPollHandler();
