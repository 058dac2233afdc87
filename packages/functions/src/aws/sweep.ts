import { createSweepHandler } from "./handlers/sweep";

/** Lambda entry: the Sweep's tasks (Survey, Act, Finish, RecordFailure), one function. */
export const handler = createSweepHandler();
