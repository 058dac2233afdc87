import { type Status, statusSchema } from "@hearth/core/status";

/**
 * Where the status comes from: same origin by default (local mode serves page and API together);
 * a deployed static site is built with `VITE_HEARTH_API_URL` set to the API's base URL.
 */
export function statusUrl(base: string | undefined): string {
  const trimmed = base?.trim().replace(/\/+$/, "");
  return trimmed ? `${trimmed}/api/status` : "/api/status";
}

export type FetchOutcome =
  | { kind: "ok"; status: Status; serverTime: number | null }
  | { kind: "unauthorized" }
  | { kind: "failed"; reason: string };

const REQUEST_TIMEOUT_MS = 10_000;

/** One request for the status document, with every way it can go wrong told apart. */
export async function fetchStatus(
  url: string,
  token: string | null,
  fetchImpl: typeof fetch = fetch,
): Promise<FetchOutcome> {
  let response: Response;
  try {
    response = await fetchImpl(url, {
      headers: token
        ? { Accept: "application/json", Authorization: `Bearer ${token}` }
        : { Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      return { kind: "failed", reason: `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` };
    }
    return { kind: "failed", reason: "the API cannot be reached" };
  }
  if (response.status === 401) return { kind: "unauthorized" };
  if (!response.ok) return { kind: "failed", reason: await describeError(response) };

  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return { kind: "failed", reason: "the API answered something that is not JSON" };
  }
  const parsed = statusSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join(".") : "the document";
    return {
      kind: "failed",
      reason: `the API answered an unexpected document (${where}: ${issue?.message})`,
    };
  }
  const date = Date.parse(response.headers.get("date") ?? "");
  return { kind: "ok", status: parsed.data, serverTime: Number.isNaN(date) ? null : date };
}

/** `HTTP 503: <the API's own message>`, when it sent one in Hearth's error shape. */
async function describeError(response: Response): Promise<string> {
  const status = `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { message?: unknown } };
    const message = body?.error?.message;
    if (typeof message === "string" && message.trim()) return `${status}: ${message.trim().slice(0, 200)}`;
  } catch {
    // Not Hearth's error shape (a proxy's HTML page, say): the status code is all we can tell.
  }
  return status;
}

/**
 * Local mode's simulation controls (`/sim/forge/webhook-loss`), next to the status route. A Hearth
 * with no simulated forge (a deployed stage) answers 404: the page then shows no simulation panel.
 */
export function webhookLossUrl(base: string | undefined): string {
  return statusUrl(base).replace(/\/api\/status$/, "/sim/forge/webhook-loss");
}

export type LossOutcome =
  | { kind: "ok"; rate: number }
  | { kind: "absent" }
  | { kind: "unauthorized" }
  | { kind: "failed"; reason: string };

/** Reads the simulated forges' webhook loss rate, or, with `rate`, sets it (a share from 0 to 1). */
export async function webhookLoss(
  url: string,
  token: string | null,
  rate?: number,
  fetchImpl: typeof fetch = fetch,
): Promise<LossOutcome> {
  let response: Response;
  try {
    response = await fetchImpl(url, {
      method: rate === undefined ? "GET" : "PUT",
      headers: {
        Accept: "application/json",
        ...(rate === undefined ? {} : { "Content-Type": "application/json" }),
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      ...(rate === undefined ? {} : { body: JSON.stringify({ rate }) }),
      cache: "no-store",
      credentials: "omit",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch {
    return { kind: "failed", reason: "the API cannot be reached" };
  }
  if (response.status === 404) return { kind: "absent" };
  if (response.status === 401) return { kind: "unauthorized" };
  if (!response.ok) return { kind: "failed", reason: await describeError(response) };
  try {
    const body = (await response.json()) as { rate?: unknown };
    if (typeof body.rate === "number" && body.rate >= 0 && body.rate <= 1)
      return { kind: "ok", rate: body.rate };
  } catch {
    // Handled below: not the answer the route gives.
  }
  return { kind: "failed", reason: "the API answered an unexpected document" };
}
