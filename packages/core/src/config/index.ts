/**
 * Hearth's configuration, one module: the config file (`hearth.config.json`: pools, stages, alarms,
 * the fleet's volumes and network) and the environment (webhook secrets, tokens, GitLab's API), with
 * one error type for both.
 */
export { readSettings, type Settings, settingsSchema } from "./environment";
export { ConfigError } from "./error";
export {
  type HearthConfig,
  type HearthConfigInput,
  hearthConfigSchema,
  loadHearthConfig,
  parseHearthConfig,
  type ReconciliationSettings,
  reconciliationSchema,
  type StageSettings,
  stageNamePattern,
  stageSettings,
} from "./file";
export { describeConfigIssues, editDistance, jsonPath, nearestKey, strictObject } from "./keys";
