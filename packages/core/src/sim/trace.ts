import { CsvError, parseCsv } from "./csv";

/** One job of a trace, as `../shared/traces/README.md` defines the format. */
export interface TraceJob {
  id: string;
  /** Seconds from the trace's start at which the job is queued. */
  createdAt: number;
  pipelineId: string;
  cacheKey: string;
  /** As written, split on `;`; routing normalizes them. */
  labels: string[];
  /** Run time on a store that is warm for `cacheKey`. */
  warmSeconds: number;
  /** Run time on a cold store. */
  coldSeconds: number;
}

export interface Trace {
  name: string;
  jobs: TraceJob[];
  /** True when the rows were not sorted by `created_at_s` and the parser sorted them. */
  resorted: boolean;
}

export class TraceError extends Error {}

export const traceColumns = [
  "job_id",
  "created_at_s",
  "pipeline_id",
  "cache_key",
  "labels",
  "duration_warm_s",
  "duration_cold_s",
] as const;

function seconds(value: string): number | undefined {
  const trimmed = value.trim();
  const number = trimmed === "" ? Number.NaN : Number(trimmed);
  return Number.isFinite(number) && number >= 0 ? number : undefined;
}

/**
 * Parses a trace. Columns may come in any order (extra ones are ignored); rows that are not sorted by
 * `created_at_s` are sorted (stably), since the simulator replays arrivals in time order.
 */
export function parseTrace(text: string, name = "trace"): Trace {
  let rows: ReturnType<typeof parseCsv>;
  try {
    rows = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvError) throw new TraceError(`${name}: ${error.message}`);
    throw error;
  }
  const header = rows[0];
  if (header === undefined) throw new TraceError(`${name}: empty file, expected a header row`);
  const names = header.fields.map((field) => field.trim().toLowerCase());
  const index = Object.fromEntries(
    traceColumns.map((column) => {
      const at = names.indexOf(column);
      if (at < 0) throw new TraceError(`${name}: missing column ${column} in the header`);
      return [column, at];
    }),
  ) as Record<(typeof traceColumns)[number], number>;

  const fail = (line: number, message: string): never => {
    throw new TraceError(`${name}: line ${line}: ${message}`);
  };
  const jobs: TraceJob[] = [];
  const ids = new Set<string>();
  let resorted = false;
  let last = Number.NEGATIVE_INFINITY;
  for (let r = 1; r < rows.length; r++) {
    const { fields, line } = rows[r] as (typeof rows)[number];
    if (fields.length !== header.fields.length) {
      fail(line, `${fields.length} fields, the header has ${header.fields.length}`);
    }
    const field = (column: (typeof traceColumns)[number]) => fields[index[column]] as string;
    const number = (column: "created_at_s" | "duration_warm_s" | "duration_cold_s") =>
      seconds(field(column)) ??
      fail(line, `${column} must be a non-negative number of seconds, got "${field(column)}"`);
    const id = field("job_id").trim();
    if (id === "") fail(line, "empty job_id");
    if (ids.has(id)) fail(line, `duplicate job_id ${id}`);
    ids.add(id);
    const createdAt = number("created_at_s");
    const warmSeconds = number("duration_warm_s");
    const coldSeconds = number("duration_cold_s");
    if (createdAt < last) resorted = true;
    last = Math.max(last, createdAt);
    jobs.push({
      id,
      createdAt,
      pipelineId: field("pipeline_id").trim(),
      cacheKey: field("cache_key"),
      labels: field("labels")
        .split(";")
        .map((label) => label.trim())
        .filter((label) => label !== ""),
      warmSeconds,
      coldSeconds,
    });
  }
  // Array.prototype.sort is stable, so jobs created at the same second keep their file order.
  if (resorted) jobs.sort((a, b) => a.createdAt - b.createdAt);
  return { name, jobs, resorted };
}
