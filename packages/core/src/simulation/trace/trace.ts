import { CsvError, parseCsv } from "./csv";

/** One job of a trace, as `traces/README.md` defines the format. */
export interface TraceJob {
  id: string;
  /** Seconds from the trace's start at which the job is queued. */
  createdAt: number;
  pipelineId: string;
  cacheKey: string;
  /** As written, split on `;`; routing normalizes them. */
  labels: readonly string[];
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

/** A decimal number, as a CSV of seconds writes one (`Number` alone would take `0x10` as 16). */
const decimal = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function seconds(value: string): number | undefined {
  const trimmed = value.trim();
  const number = decimal.test(trimmed) ? Number(trimmed) : Number.NaN;
  return Number.isFinite(number) ? number : undefined;
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
      if (names.lastIndexOf(column) !== at)
        throw new TraceError(`${name}: column ${column} appears twice in the header`);
      return [column, at];
    }),
  ) as Record<(typeof traceColumns)[number], number>;

  const fail = (line: number, message: string): never => {
    throw new TraceError(`${name}: line ${line}: ${message}`);
  };
  const jobs: TraceJob[] = [];
  const ids = new Set<string>();
  // Label sets and cache keys repeat a lot: one copy of each saves memory on large traces.
  const labelSets = new Map<string, string[]>();
  const keys = new Map<string, string>();
  const at = {
    id: index.job_id,
    created: index.created_at_s,
    pipeline: index.pipeline_id,
    key: index.cache_key,
    labels: index.labels,
    warm: index.duration_warm_s,
    cold: index.duration_cold_s,
  };
  const width = header.fields.length;
  const number = (fields: string[], column: number, line: number): number =>
    seconds(fields[column] as string) ??
    fail(line, `${names[column]} must be a non-negative number of seconds, got "${fields[column]}"`);
  let resorted = false;
  let last = Number.NEGATIVE_INFINITY;
  for (let r = 1; r < rows.length; r++) {
    const { fields, line } = rows[r] as (typeof rows)[number];
    if (fields.length !== width) fail(line, `${fields.length} fields, the header has ${width}`);
    const id = (fields[at.id] as string).trim();
    if (id === "") fail(line, "empty job_id");
    if (ids.has(id)) fail(line, `duplicate job_id ${id}`);
    ids.add(id);
    const createdAt = number(fields, at.created, line);
    const warmSeconds = number(fields, at.warm, line);
    const coldSeconds = number(fields, at.cold, line);
    if (createdAt < last) resorted = true;
    else last = createdAt;
    const labelText = fields[at.labels] as string;
    let labels = labelSets.get(labelText);
    if (labels === undefined) {
      labels = labelText
        .split(";")
        .map((label) => label.trim())
        .filter((label) => label !== "");
      labelSets.set(labelText, labels);
    }
    const keyText = fields[at.key] as string;
    let cacheKey = keys.get(keyText);
    if (cacheKey === undefined) {
      cacheKey = internalized(keyText);
      keys.set(keyText, cacheKey);
    }
    jobs.push({
      id,
      createdAt,
      pipelineId: (fields[at.pipeline] as string).trim(),
      cacheKey,
      labels,
      warmSeconds,
      coldSeconds,
    });
  }
  // Array.prototype.sort is stable, so jobs created at the same second keep their file order.
  if (resorted) jobs.sort((a, b) => a.createdAt - b.createdAt);
  return { name, jobs, resorted };
}

/**
 * The text as the engine keeps property names: one flat copy, shared by every equal name. Cache keys
 * are compared on every placement decision (`includes` over each store's keys); a key sliced from the
 * trace's text compares through a slow path, two internalized ones by identity.
 */
function internalized(text: string): string {
  const holder: Record<string, true> = { [text]: true };
  return Object.keys(holder)[0] as string;
}

/** A first arrival later than this after the trace's start is most likely a clock time, not an offset. */
export const LATE_START_SECONDS = 7 * 24 * 3600;

/**
 * What a valid trace may still get wrong, for the reader to check: times that look like clock times
 * (`created_at_s` counts from the trace's start, and a fixed fleet pays for the time before the first
 * job), and jobs that run longer on a warm store than on a cold one.
 */
export function traceWarnings(trace: Trace): string[] {
  const warnings: string[] = [];
  if (trace.jobs.length === 0) return ["the trace has no jobs: every figure is zero"];
  const first = trace.jobs[0]?.createdAt ?? 0;
  if (first > LATE_START_SECONDS)
    warnings.push(
      `the first job arrives ${(first / 86400).toFixed(0)} days after the trace's start (created_at_s counts from it): clock times? The run starts an hour before it, for every policy`,
    );
  let slower = 0;
  for (const job of trace.jobs) if (job.warmSeconds > job.coldSeconds) slower++;
  if (slower > 0)
    warnings.push(
      `${slower} of ${trace.jobs.length} jobs run longer warm than cold (duration_warm_s > duration_cold_s); simulated as given`,
    );
  return warnings;
}
