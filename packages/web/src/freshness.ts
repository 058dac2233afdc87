/**
 * When to refresh, and when to tell the reader that what they see is old. Pure, so that the rules
 * are tested without a browser.
 */

/** How often the page asks for the status while it is visible. */
export const REFRESH_MS = 5_000;
/** Data older than this is flagged stale: six missed refreshes, beyond a hiccup. */
export const STALE_AFTER_MS = 30_000;
const MAX_RETRY_MS = 30_000;

/**
 * Wait before the next attempt after `failures` failures in a row: 5 s, 10 s, 20 s, then 30 s, so a
 * down API is not hammered and a recovered one is seen within half a minute.
 */
export function retryDelay(failures: number): number {
  if (failures <= 0) return REFRESH_MS;
  return Math.min(MAX_RETRY_MS, REFRESH_MS * 2 ** (failures - 1));
}

export interface Received {
  /** The document's `generatedAt`. */
  generatedAt: string;
  /** When it arrived, on the browser's clock (ms). */
  receivedAt: number;
  /** The server's clock when it answered (the `Date` header, ms), when the browser may read it. */
  serverTime: number | null;
}

/**
 * How old the data on screen is, in ms. The generation lag is measured on the server's clock when it
 * is known, so a browser whose clock is off does not see fresh data as stale (or stale as fresh).
 */
export function dataAge(received: Received, now: number): number {
  const generated = Date.parse(received.generatedAt);
  const lag = Number.isNaN(generated) ? 0 : (received.serverTime ?? received.receivedAt) - generated;
  // The Date header has whole seconds only, so a small negative lag is rounding, not the future.
  return Math.max(0, lag) + Math.max(0, now - received.receivedAt);
}

export type Health =
  | { state: "loading"; message: string }
  | { state: "live"; message: null }
  | { state: "stale"; message: string }
  | { state: "error"; message: string };

/**
 * What the banner says. The message holds no ticking numbers: it is announced to screen readers when
 * it changes, and the header shows the age.
 */
export function health(options: {
  received: Received | null;
  /** Why the last refresh failed; null when it succeeded. */
  failure: string | null;
  now: number;
  format: (time: string) => string;
}): Health {
  const { received, failure, now } = options;
  if (received === null) {
    return failure === null
      ? { state: "loading", message: "Loading the status…" }
      : { state: "error", message: `Cannot load the status: ${failure}. Retrying automatically.` };
  }
  const since = options.format(received.generatedAt);
  const stale = dataAge(received, now) >= STALE_AFTER_MS;
  if (failure !== null) {
    return {
      state: "error",
      message: `Cannot refresh the status: ${failure}. ${stale ? "The data below is stale, from" : "Showing data from"} ${since}. Retrying automatically.`,
    };
  }
  if (stale) {
    return {
      state: "stale",
      message: `The status is stale: Hearth generated it at ${since} and has not updated it since.`,
    };
  }
  return { state: "live", message: null };
}
