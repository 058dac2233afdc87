import { createScaleHandlers } from "./handlers/scale";

/**
 * Lambda entries: ScaleFleet's five task functions (`scale.observe`, `scale.plan`, …), one per Task
 * state. Each function loads this module and reads only the links its own step needs.
 */
const handlers = createScaleHandlers();

export const observe = handlers.observe;
export const plan = handlers.plan;
export const apply = handlers.apply;
export const finish = handlers.finish;
export const recordFailure = handlers.recordFailure;
