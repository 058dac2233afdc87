import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import type { Logger } from "../log";
import { METRIC_SERVICE } from "./metric-names";

/**
 * Structured JSON logs in Lambda: Powertools Logger behind Hearth's own `Logger` interface, so that
 * handlers and core log the same way in Lambda and locally. Each entry carries the service, the
 * stage, and (once `addContext` has run) the function name, request id and cold start.
 */
export function createLambdaLogger(stage: string, logger?: PowertoolsLogger) {
  const powertools =
    logger ?? new PowertoolsLogger({ serviceName: METRIC_SERVICE, persistentKeys: { stage } });
  // Fields are facts (ids, codes, counts), never headers or bodies: see ../log.ts.
  const log: Logger = {
    info: (message, fields) => powertools.info(message, { ...fields }),
    warn: (message, fields) => powertools.warn(message, { ...fields }),
    error: (message, fields) => powertools.error(message, { ...fields }),
  };
  return { powertools, log };
}
