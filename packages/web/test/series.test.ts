import type { Series } from "@hearth/core/status";
import { describe, expect, it } from "vitest";
import { type ChartData, chartData, describeSeries, yMax } from "../src/series";

const start = "2026-03-01T11:00:00.000Z";
const startSeconds = Date.parse(start) / 1000;
const series = (pools: Series["pools"], stepSeconds = 60): Series => ({ stepSeconds, start, pools });

describe("chartData", () => {
  it("puts each value at its minute, in unix seconds", () => {
    const data = chartData(series({ a: { queued: [0, 2, 1], capacity: [4, 4, 6], busy: [1, 3, 4] } }), "a");
    expect(data).toEqual([
      [startSeconds, startSeconds + 60, startSeconds + 120],
      [0, 2, 1],
      [4, 4, 6],
      [1, 3, 4],
    ]);
  });

  it("follows the document's step", () => {
    const [times] = chartData(series({ a: { queued: [0, 1], capacity: [1, 1], busy: [0, 0] } }, 30), "a");
    expect(times).toEqual([startSeconds, startSeconds + 30]);
  });

  it("cuts columns to the shortest, so no value lands on the wrong minute", () => {
    const data = chartData(series({ a: { queued: [1, 2, 3], capacity: [4, 5], busy: [0, 0, 0, 0] } }), "a");
    expect(data).toEqual([
      [startSeconds, startSeconds + 60],
      [1, 2],
      [4, 5],
      [0, 0],
    ]);
  });

  it("keeps gaps as gaps", () => {
    const data = chartData(series({ a: { queued: [null, 1], capacity: [null, 2], busy: [null, 0] } }), "a");
    expect(data[1]).toEqual([null, 1]);
  });

  it("gives a pool without a series, or a bad start, an empty chart", () => {
    expect(chartData(series({}), "a")).toEqual([[], [], [], []]);
    expect(
      chartData({ ...series({ a: { queued: [1], capacity: [1], busy: [1] } }), start: "soon" }, "a"),
    ).toEqual([[], [], [], []]);
  });
});

const data = (
  queued: (number | null)[],
  capacity: (number | null)[],
  busy: (number | null)[] = [],
): ChartData => [queued.map((_, i) => i), queued, capacity, busy];

describe("yMax", () => {
  it("leaves headroom above the highest line, in whole jobs", () => {
    expect(yMax(data([1, 9], [12, 12]))).toBe(14);
    expect(yMax(data([40], [10], [10]))).toBe(46);
  });

  it("never zooms in so far that one job looks like a spike", () => {
    expect(yMax(data([0, 1], [2, 2]))).toBe(4);
    expect(yMax(data([], []))).toBe(4);
    expect(yMax(data([null], [null]))).toBe(4);
  });
});

describe("describeSeries", () => {
  it("tells the peak and the range in one sentence", () => {
    expect(describeSeries(data([0, 8, 4], [4, 8, 12]))).toBe(
      "Last hour: queue peaked at 8, now 4; capacity between 4 and 12 slots, now 12.",
    );
    expect(describeSeries(data([0, 0], [6, 6]))).toBe("Last hour: nothing queued; capacity 6 slots.");
  });

  it("says so when nothing was recorded", () => {
    expect(describeSeries(data([], []))).toBe("No queue or capacity recorded in the last hour.");
    expect(describeSeries(data([null, null], [null, null]))).toBe(
      "No queue or capacity recorded in the last hour.",
    );
  });
});
