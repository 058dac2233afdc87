import { describe, expect, it } from "vitest";
import { formatAgo, formatBytes, formatDuration, plural, safeHref } from "../src/format";

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [42.9, "42s"],
    [59, "59s"],
    [60, "1m 00s"],
    [252, "4m 12s"],
    [3599, "59m 59s"],
    [3600, "1h 00m"],
    [11_520, "3h 12m"],
    [86_399, "23h 59m"],
    [86_400, "1d 00h"],
    [3 * 86_400 + 4 * 3600 + 59, "3d 04h"],
  ])("%s s reads %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("shows unknown durations as a dash, and clock skew as zero", () => {
    expect(formatDuration(null)).toBe("—");
    expect(formatDuration(undefined)).toBe("—");
    expect(formatDuration(Number.NaN)).toBe("—");
    expect(formatDuration(-3)).toBe("0s");
  });
});

describe("formatAgo", () => {
  it("says just now for the last two seconds, then counts", () => {
    expect(formatAgo(0)).toBe("just now");
    expect(formatAgo(1999)).toBe("just now");
    expect(formatAgo(2000)).toBe("2s ago");
    expect(formatAgo(190_000)).toBe("3m 10s ago");
  });
});

describe("plural", () => {
  it("agrees with the count", () => {
    expect(plural(1, "cache key")).toBe("1 cache key");
    expect(plural(0, "cache key")).toBe("0 cache keys");
    expect(plural(2, "is", "are")).toBe("2 are");
  });
});

describe("safeHref", () => {
  it("keeps forge links and refuses anything a browser would run", () => {
    expect(safeHref("https://github.com/acme/web/actions/runs/1/job/2")).toBe(
      "https://github.com/acme/web/actions/runs/1/job/2",
    );
    expect(safeHref("HTTP://gitlab.local/-/jobs/3")).toBe("HTTP://gitlab.local/-/jobs/3");
    expect(safeHref("javascript:alert(1)")).toBeNull();
    expect(safeHref(" javascript:alert(1)")).toBeNull();
    expect(safeHref("data:text/html,<script>")).toBeNull();
    expect(safeHref("//evil.example")).toBeNull();
    expect(safeHref(null)).toBeNull();
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1023, "1023 B"],
    [1536, "1.5 KiB"],
    [1_000_000, "976.6 KiB"],
    [40 * 1024 ** 3, "40.0 GiB"],
  ])("%s bytes reads %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
