import { describe, expect, it } from "vitest";
import { exampleStatus } from "../../core/test/fixtures/status";
import { fetchStatus, statusUrl, webhookLoss, webhookLossUrl } from "../src/api";

describe("statusUrl", () => {
  it("is same-origin by default", () => {
    expect(statusUrl(undefined)).toBe("/api/status");
    expect(statusUrl("")).toBe("/api/status");
    expect(statusUrl("  ")).toBe("/api/status");
  });

  it("appends the route to a configured base, with or without a stage path or slash", () => {
    expect(statusUrl("https://abc123.execute-api.eu-west-1.amazonaws.com")).toBe(
      "https://abc123.execute-api.eu-west-1.amazonaws.com/api/status",
    );
    expect(statusUrl("https://abc123.execute-api.eu-west-1.amazonaws.com/prod/")).toBe(
      "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/api/status",
    );
  });
});

type Call = { url: string; init: RequestInit | undefined };

/** A fetch that records its calls and answers `respond`. */
function fakeFetch(respond: () => Response | Promise<Response>) {
  const calls: Call[] = [];
  const impl = (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init });
    return respond();
  }) as typeof fetch;
  return { impl, calls };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

describe("fetchStatus", () => {
  it("returns the parsed document and the server's clock", async () => {
    const status = exampleStatus(new Date("2026-03-01T12:00:00Z"));
    const { impl } = fakeFetch(() => json(200, status, { date: "Sun, 01 Mar 2026 12:00:01 GMT" }));
    const outcome = await fetchStatus("/api/status", null, impl);
    expect(outcome).toEqual({ kind: "ok", status, serverTime: Date.parse("2026-03-01T12:00:01Z") });
  });

  it("sends the token as a bearer token, and no Authorization header without one", async () => {
    const { impl, calls } = fakeFetch(() => json(200, exampleStatus()));
    await fetchStatus("/api/status", "s3cret", impl);
    await fetchStatus("/api/status", null, impl);
    const headers = calls.map((call) => new Headers(call.init?.headers));
    expect(headers[0]?.get("authorization")).toBe("Bearer s3cret");
    expect(headers[1]?.has("authorization")).toBe(false);
    expect(calls[0]?.init?.cache).toBe("no-store");
    expect(calls[0]?.url).toBe("/api/status");
  });

  it("tells a 401 apart from a failure", async () => {
    const { impl } = fakeFetch(() =>
      json(401, { error: { code: "unauthorized", message: "token required" } }),
    );
    expect(await fetchStatus("/api/status", "wrong", impl)).toEqual({ kind: "unauthorized" });
  });

  it("quotes Hearth's error message, and only the status code of anything else", async () => {
    const hearth = fakeFetch(() =>
      json(500, { error: { code: "internal", message: "the ledger did not answer" } }),
    );
    expect(await fetchStatus("/api/status", null, hearth.impl)).toEqual({
      kind: "failed",
      reason: "HTTP 500: the ledger did not answer",
    });
    const proxy = fakeFetch(() => new Response("<html>Bad gateway</html>", { status: 502 }));
    expect(await fetchStatus("/api/status", null, proxy.impl)).toEqual({
      kind: "failed",
      reason: "HTTP 502",
    });
  });

  it("fails on an answer that is not JSON, or not a status document", async () => {
    const html = fakeFetch(() => new Response("<!doctype html>", { status: 200 }));
    expect(await fetchStatus("/api/status", null, html.impl)).toEqual({
      kind: "failed",
      reason: "the API answered something that is not JSON",
    });
    const wrong = fakeFetch(() => json(200, { ...exampleStatus(), pools: [{ name: "x" }] }));
    const outcome = await fetchStatus("/api/status", null, wrong.impl);
    expect(outcome.kind).toBe("failed");
    expect(outcome.kind === "failed" && outcome.reason).toMatch(
      /^the API answered an unexpected document \(pools\.0\./,
    );
  });

  it("reports a network error or a timeout without throwing", async () => {
    const down = fakeFetch(() => Promise.reject(new TypeError("fetch failed")));
    expect(await fetchStatus("/api/status", null, down.impl)).toEqual({
      kind: "failed",
      reason: "the API cannot be reached",
    });
    const slow = fakeFetch(() => Promise.reject(new DOMException("timed out", "TimeoutError")));
    expect(await fetchStatus("/api/status", null, slow.impl)).toEqual({
      kind: "failed",
      reason: "no answer within 10 s",
    });
  });
});

describe("webhookLoss (the simulation panel)", () => {
  it("sits next to the status route", () => {
    expect(webhookLossUrl(undefined)).toBe("/sim/forge/webhook-loss");
    expect(webhookLossUrl("http://127.0.0.1:3000/")).toBe("http://127.0.0.1:3000/sim/forge/webhook-loss");
  });

  it("reads the rate, and sets it with PUT {rate} and the token", async () => {
    const { impl, calls } = fakeFetch(() => json(200, { rate: 0.3 }));
    expect(await webhookLoss("/sim/forge/webhook-loss", "tok", 0.3, impl)).toEqual({ kind: "ok", rate: 0.3 });
    expect(calls[0]?.init?.method).toBe("PUT");
    expect(calls[0]?.init?.body).toBe('{"rate":0.3}');
    expect(calls[0]?.init?.headers).toMatchObject({ Authorization: "Bearer tok" });
    expect(await webhookLoss("/sim/forge/webhook-loss", null, undefined, impl)).toEqual({
      kind: "ok",
      rate: 0.3,
    });
    expect(calls[1]?.init?.method).toBe("GET");
    expect(calls[1]?.init?.body).toBeUndefined();
  });

  it("tells a Hearth without a simulation (404), a refused token, a refusal and a strange answer apart", async () => {
    expect(await webhookLoss("/x", null, undefined, fakeFetch(() => json(404, {})).impl)).toEqual({
      kind: "absent",
    });
    expect(await webhookLoss("/x", null, undefined, fakeFetch(() => json(401, {})).impl)).toEqual({
      kind: "unauthorized",
    });
    const refused = fakeFetch(() =>
      json(400, { error: { code: "invalid_payload", message: "rate: rate is from 0 to 1" } }),
    );
    expect(await webhookLoss("/x", "t", 2, refused.impl)).toEqual({
      kind: "failed",
      reason: "HTTP 400: rate: rate is from 0 to 1",
    });
    expect(
      await webhookLoss("/x", "t", undefined, fakeFetch(() => json(200, { rate: 7 })).impl),
    ).toMatchObject({
      kind: "failed",
    });
  });
});
