import { createInterruptionHandler } from "./handlers/interruption";

/** Lambda entry: HandleInterruption's tasks (Claim, Drain, Settle, RecordFailure), one function. */
export const handler = createInterruptionHandler();
