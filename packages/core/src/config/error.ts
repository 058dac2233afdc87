/**
 * A configuration Hearth cannot run with: the config file, an environment variable or a command-line
 * flag. Its message names what is wrong and where (a JSON path, a variable's name), never a value
 * that could be a secret.
 */
export class ConfigError extends Error {
  readonly code = "invalid_config";
  override name = "ConfigError";
}
