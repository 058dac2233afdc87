/**
 * Structured JSON logs, one line per entry. Callers pass facts, never headers or bodies, so no
 * secret can reach a log line.
 */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function createLogger(
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Logger {
  const entry = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write(JSON.stringify({ level, time: new Date().toISOString(), message, ...fields }));
  return { info: entry("info"), warn: entry("warn"), error: entry("error") };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
