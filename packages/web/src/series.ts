import type { Series } from "@hearth/core/status";

/** uPlot's columns: times (unix seconds), then queued, capacity and busy, one value per step. */
export type ChartData = [number[], (number | null)[], (number | null)[], (number | null)[]];

/**
 * Shapes one pool's last hour for the chart. Columns are cut to the shortest, so a half-written
 * document never misaligns a value with its minute; a pool without a series gets an empty chart.
 */
export function chartData(series: Series, pool: string): ChartData {
  const values = series.pools[pool];
  const start = Date.parse(series.start) / 1000;
  if (!values || Number.isNaN(start)) return [[], [], [], []];
  const length = Math.min(values.queued.length, values.capacity.length, values.busy.length);
  const times = Array.from({ length }, (_, i) => start + i * series.stepSeconds);
  return [
    times,
    values.queued.slice(0, length),
    values.capacity.slice(0, length),
    values.busy.slice(0, length),
  ];
}

const known = (values: (number | null)[]) => values.filter((value): value is number => value !== null);

/** The top of the y axis: whole jobs, some headroom, and never so low that 1 looks like a spike. */
export function yMax(data: ChartData): number {
  const peak = Math.max(0, ...known(data[1]), ...known(data[2]), ...known(data[3]));
  return Math.max(4, Math.ceil(peak * 1.15));
}

/** The chart in one sentence, for screen readers and for anyone the canvas fails. */
export function describeSeries(data: ChartData): string {
  const queued = known(data[1]);
  const capacity = known(data[2]);
  if (queued.length === 0 && capacity.length === 0) return "No queue or capacity recorded in the last hour.";
  const parts: string[] = [];
  if (queued.length) {
    const peak = Math.max(...queued);
    parts.push(peak === 0 ? "nothing queued" : `queue peaked at ${peak}, now ${queued.at(-1)}`);
  }
  if (capacity.length) {
    const low = Math.min(...capacity);
    const high = Math.max(...capacity);
    parts.push(
      low === high
        ? `capacity ${low} slots`
        : `capacity between ${low} and ${high} slots, now ${capacity.at(-1)}`,
    );
  }
  return `Last hour: ${parts.join("; ")}.`;
}
