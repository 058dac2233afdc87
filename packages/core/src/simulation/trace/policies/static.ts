import type { SimJob } from "../fleet";
import { type Policy, type PolicyContext, runStart } from "../policy";

/**
 * `static`: a fixed fleet of always-on on-demand instances, what teams with dedicated runner nodes
 * do. Its best setting is the smallest fleet that runs the trace's peak concurrency (every job
 * starting on arrival, on a warm store), so each pool gets ceil(peak / slots) instances, running from
 * the start of the trace to its end.
 */
export function peakConcurrency(jobs: readonly SimJob[]): number {
  const starts = jobs.map((job) => job.trace.createdAt).sort((a, b) => a - b);
  const ends = jobs.map((job) => job.trace.createdAt + job.trace.warmSeconds).sort((a, b) => a - b);
  let running = 0;
  let peak = 0;
  let e = 0;
  for (const start of starts) {
    // A slot freed at t takes a job arriving at t.
    while (e < ends.length && (ends[e] as number) <= start) {
      e++;
      running--;
    }
    running++;
    peak = Math.max(peak, running);
  }
  return peak;
}

export function staticPolicy(context: PolicyContext): Policy {
  const launch = () => {
    const { fleet, model } = context;
    for (const pool of fleet.pools) {
      const peak = peakConcurrency(context.jobs.filter((job) => job.pool === pool));
      const count = Math.min(model.maxInstancesPerPool, Math.ceil(peak / model.slotsPerInstance));
      for (let i = 0; i < count; i++) {
        fleet.launch(pool, { market: "on-demand", group: "static", running: true });
      }
    }
  };
  return {
    observer: {},
    start() {
      // Running from the run's start: the trace's, or an hour before a late first job (`runStart`).
      const start = runStart(context);
      if (start > 0) context.clock.at(start, launch);
      else launch();
    },
  };
}
