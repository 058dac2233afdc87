import { Random } from "../rules";
import { traceColumns } from "./trace";

/**
 * Synthetic traces in the format of traces/README.md, for benchmarks and tests: pipelines of one project arrive
 * with a weekday, working-hours rhythm; projects are Zipf-popular; each pipeline runs a window of
 * its project's jobs at once; run times are log-normal, and a cold store multiplies them.
 */
export interface SyntheticOptions {
  jobs: number;
  days: number;
  seed: number;
  projects?: number;
  /** Share of projects whose jobs ask for aarch64. */
  aarch64Share?: number;
}

const jobsPerProject = 6;

/** Relative arrival rate by hour of the week (0 = Monday 00:00): busy weekday hours, quiet nights. */
function rate(hourOfWeek: number): number {
  const day = Math.floor(hourOfWeek / 24);
  const hour = hourOfWeek % 24;
  const weekday = day < 5 ? 1 : 0.15;
  const working = hour >= 8 && hour < 19 ? 1 : hour >= 6 && hour < 22 ? 0.35 : 0.08;
  return weekday * working;
}

const quote = (field: string): string =>
  /[",\n\r]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field;

/** A trace as CSV text: `jobs` jobs over about `days` days (fewer jobs only if `days` is too short). */
export function syntheticTraceCsv(options: SyntheticOptions): string {
  const random = new Random(options.seed);
  const projects = options.projects ?? 40;
  const aarch64 = options.aarch64Share ?? 0.2;
  const weights = Array.from({ length: projects }, (_, p) => 1 / (p + 1) ** 1.1);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  weights.reduce((sum, w) => {
    cumulative.push((sum + w) / total);
    return sum + w;
  }, 0);
  const arch = Array.from({ length: projects }, (_, p) =>
    (p * 7919) % 100 < aarch64 * 100 ? "nix;aarch64-linux" : "nix;x86_64-linux",
  );
  // Median run time per job of a project, fixed so that a job's runs look alike.
  const medians = Array.from(
    { length: projects * jobsPerProject },
    () => 60 * Math.exp(1.2 * random.next() + 1.6),
  );

  const meanFanout = 5;
  const hours = options.days * 24;
  let weekly = 0;
  for (let h = 0; h < 168; h++) weekly += rate(h);
  // A little above the mean, so that the trace reaches `jobs` before its last day, then stops.
  const pipelinesPerUnitRate = (1.05 * options.jobs) / meanFanout / ((weekly * hours) / 168);

  const lines = [traceColumns.join(",")];
  let jobs = 0;
  let pipeline = 0;
  let last = 0;
  for (let hour = 0; hour < hours && jobs < options.jobs; hour++) {
    const expected = rate(hour % 168) * pipelinesPerUnitRate;
    // Poisson arrivals within the hour.
    let at = hour * 3600 + random.exponential(expected / 3600);
    while (at < (hour + 1) * 3600 && jobs < options.jobs) {
      // Jobs of a pipeline arrive 0.2 s apart; the next pipeline never arrives before them.
      at = Math.max(at, last);
      pipeline++;
      const u = random.next();
      const project = cumulative.findIndex((c) => u <= c);
      const fanout = Math.max(
        1,
        Math.min(jobsPerProject * 3, Math.round(-Math.log(1 - random.next()) * meanFanout)),
      );
      const first = random.int(jobsPerProject);
      for (let j = 0; j < fanout && jobs < options.jobs; j++) {
        const job = (first + j) % jobsPerProject;
        const median = medians[project * jobsPerProject + job] as number;
        const warm = Math.max(5, median * Math.exp(0.3 * (random.next() - 0.5)));
        const cold = warm * (1.5 + 3 * random.next());
        last = Math.round((at + j * 0.2) * 10) / 10;
        lines.push(
          [
            `b${pipeline}-${j}`,
            last.toFixed(1),
            `b${pipeline}`,
            quote(`p${project}/job ${job}, matrix`),
            arch[project] as string,
            warm.toFixed(1),
            cold.toFixed(1),
          ].join(","),
        );
        jobs++;
      }
      at += random.exponential(expected / 3600);
    }
  }
  return `${lines.join("\n")}\n`;
}
