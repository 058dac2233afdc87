import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatMinute } from "./format";
import { type ChartData, yMax } from "./series";

const HEIGHT = 170;

/** Colors come from the stylesheet, so the chart follows the light or dark theme. */
function palette() {
  const style = getComputedStyle(document.documentElement);
  const color = (name: string) => style.getPropertyValue(name).trim();
  return {
    queued: color("--chart-queued"),
    capacity: color("--chart-capacity"),
    busy: color("--chart-busy"),
    busyFill: color("--chart-busy-fill"),
    axis: color("--muted"),
    grid: color("--grid"),
  };
}

/** One pool's queue against its capacity over the last hour: a uPlot kept alive across refreshes. */
export class PoolChart {
  private plot: uPlot | null = null;
  private data: ChartData = [[], [], [], []];
  private readonly observer: ResizeObserver;

  /** `onCursor` gets the index of the minute under the pointer, or null when it leaves the chart. */
  constructor(
    private readonly target: HTMLElement,
    private readonly onCursor: (index: number | null) => void,
  ) {
    this.observer = new ResizeObserver(() => {
      const width = this.width();
      if (this.plot && width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    });
    this.observer.observe(target);
  }

  update(data: ChartData): void {
    this.data = data;
    if (this.plot) this.plot.setData(data);
    else this.create();
  }

  /** Redraw from scratch, e.g. when the color scheme changes. */
  rebuild(): void {
    this.plot?.destroy();
    this.create();
  }

  destroy(): void {
    this.observer.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    // Before layout (or while hidden) the target has no width; the observer resizes it later.
    return Math.max(200, Math.floor(this.target.clientWidth));
  }

  private create(): void {
    const colors = palette();
    const axis = {
      stroke: colors.axis,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { stroke: colors.grid, width: 1, size: 4 },
      font: "12px system-ui, sans-serif",
    };
    const stepped = uPlot.paths.stepped?.({ align: 1 });
    this.plot = new uPlot(
      {
        width: this.width(),
        height: HEIGHT,
        cursor: { y: false, drag: { x: false, y: false }, points: { size: 6 } },
        // The card draws its own key, which also shows the values under the cursor.
        legend: { show: false },
        hooks: {
          setCursor: [
            (plot) =>
              this.onCursor(
                plot.cursor.idx === undefined || (plot.cursor.left ?? -1) < 0 ? null : plot.cursor.idx,
              ),
          ],
        },
        scales: { x: { time: true }, y: { range: (plot) => [0, yMax(plot.data as unknown as ChartData)] } },
        axes: [
          { ...axis, space: 60, values: (_, splits) => splits.map((split) => formatMinute(split * 1000)) },
          {
            ...axis,
            size: 36,
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
            values: (_, splits) => splits.map((split) => String(split)),
          },
        ],
        series: [
          { label: "Time" },
          { label: "Queued", stroke: colors.queued, width: 2 },
          { label: "Capacity", stroke: colors.capacity, width: 2, ...(stepped ? { paths: stepped } : {}) },
          {
            label: "Busy",
            stroke: colors.busy,
            fill: colors.busyFill,
            width: 1,
            ...(stepped ? { paths: stepped } : {}),
          },
        ],
      },
      this.data,
      this.target,
    );
  }
}
