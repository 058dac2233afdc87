/** Formatting for people: short, stable widths, the same everywhere on the page. */

/** `42s`, `4m 05s`, `2h 03m`, `3d 04h`; `—` when unknown. Negative values (clock skew) read as 0. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** How long ago, from milliseconds: `just now`, `12s ago`, `4m 05s ago`. */
export function formatAgo(ms: number): string {
  return ms < 2000 ? "just now" : `${formatDuration(ms / 1000)} ago`;
}

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

const minuteFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

/** `14:03`, for chart axes. */
export function formatMinute(time: number): string {
  return minuteFormat.format(new Date(time));
}

/** Wall-clock time in the reader's zone, `14:03:07`. */
export function formatClock(time: string | number | Date): string {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? "—" : clockFormat.format(date);
}

/** A size in bytes, in binary units: `512 B`, `1.5 KiB`, `37.2 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

export const sourceNames = { github: "GitHub", gitlab: "GitLab" } as const;

/** Only links a forge could have made; anything else is shown as text, never followed. */
export function safeHref(url: string | null): string | null {
  return url !== null && /^https?:\/\//i.test(url) ? url : null;
}
