import { describe, expect, it } from "vitest";
import { dataAge, health, REFRESH_MS, type Received, retryDelay, STALE_AFTER_MS } from "../src/freshness";

const t0 = Date.parse("2026-03-01T12:00:00.000Z");
const received = (overrides: Partial<Received> = {}): Received => ({
  generatedAt: new Date(t0).toISOString(),
  receivedAt: t0,
  serverTime: t0,
  ...overrides,
});
const format = (time: string) => time.slice(11, 19);

describe("retryDelay", () => {
  it("backs off from the refresh interval to half a minute", () => {
    expect([0, 1, 2, 3, 4, 10].map(retryDelay)).toEqual([REFRESH_MS, 5_000, 10_000, 20_000, 30_000, 30_000]);
  });
});

describe("dataAge", () => {
  it("is the time since the document was generated", () => {
    expect(dataAge(received(), t0 + 7_000)).toBe(7_000);
    expect(dataAge(received({ generatedAt: new Date(t0 - 3_000).toISOString() }), t0 + 2_000)).toBe(5_000);
  });

  it("measures the generation lag on the server's clock, not the browser's", () => {
    // The browser runs 10 minutes ahead; the server generated the document 2 s before answering.
    const skewed = received({
      generatedAt: new Date(t0 - 2_000).toISOString(),
      serverTime: t0,
      receivedAt: t0 + 600_000,
    });
    expect(dataAge(skewed, t0 + 600_000 + 1_000)).toBe(3_000);
  });

  it("falls back to the browser's clock without a Date header", () => {
    const noHeader = received({ serverTime: null, generatedAt: new Date(t0 - 4_000).toISOString() });
    expect(dataAge(noHeader, t0 + 1_000)).toBe(5_000);
  });

  it("reads the Date header's whole seconds as no lag rather than a negative one", () => {
    const rounded = received({ generatedAt: new Date(t0 + 800).toISOString(), serverTime: t0 });
    expect(dataAge(rounded, t0)).toBe(0);
  });
});

describe("health", () => {
  it("is loading before the first answer, and an error if that fails", () => {
    expect(health({ received: null, failure: null, now: t0, format })).toEqual({
      state: "loading",
      message: "Loading the status…",
    });
    expect(health({ received: null, failure: "HTTP 502", now: t0, format })).toEqual({
      state: "error",
      message: "Cannot load the status: HTTP 502. Retrying automatically.",
    });
  });

  it("is live while the data is fresh, and stale from STALE_AFTER_MS", () => {
    expect(health({ received: received(), failure: null, now: t0 + STALE_AFTER_MS - 1, format })).toEqual({
      state: "live",
      message: null,
    });
    const stale = health({ received: received(), failure: null, now: t0 + STALE_AFTER_MS, format });
    expect(stale.state).toBe("stale");
    expect(stale.message).toBe(
      "The status is stale: Hearth generated it at 12:00:00 and has not updated it since.",
    );
  });

  it("reports a failed refresh, and says when the data it keeps showing has gone stale", () => {
    const failing = health({ received: received(), failure: "HTTP 500", now: t0 + 6_000, format });
    expect(failing).toEqual({
      state: "error",
      message: "Cannot refresh the status: HTTP 500. Showing data from 12:00:00. Retrying automatically.",
    });
    const old = health({ received: received(), failure: "HTTP 500", now: t0 + 60_000, format });
    expect(old.state).toBe("error");
    expect(old.message).toContain("The data below is stale, from 12:00:00");
  });

  it("keeps the same message from one second to the next, so it is announced once", () => {
    const at = (now: number) => health({ received: received(), failure: "HTTP 500", now, format }).message;
    expect(at(t0 + 6_000)).toBe(at(t0 + 7_000));
  });
});
