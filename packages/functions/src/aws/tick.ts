import { createTickHandler } from "./handlers/tick";

/** Lambda entry: the minute tick, invoked by EventBridge Scheduler. */
export const handler = createTickHandler();
