import type {
  DisplayState,
  InstanceView,
  JobView,
  PollingView,
  PoolStatus,
  Status,
  StatusEvent,
} from "@hearth/core/status";
import { PoolChart } from "./chart";
import { type Child, type Column, h, hidden, table } from "./dom";
import {
  formatAgo,
  formatBytes,
  formatClock,
  formatDuration,
  formatMinute,
  plural,
  safeHref,
  sourceNames,
} from "./format";
import { type ChartData, chartData, describeSeries } from "./series";

/** The dashboard's parts, drawn from one status document. Each returns what replaces a section's body. */

const jobKey = (job: JobView) => `${job.source}#${job.id}`;

function labelList(labels: string[], name = "Labels"): HTMLElement {
  // A GitLab job's tags are looked up after its webhook; until then it has none to show.
  if (labels.length === 0) return h("span", { class: "sub" }, "none known");
  return h(
    "ul",
    { class: "labels", "aria-label": name },
    // A label may be 256 characters: it is cut with an ellipsis, and shown whole on hover.
    labels.map((label) => h("li", { title: label }, label)),
  );
}

function jobCell(job: JobView): Child[] {
  const title = job.name || `job ${job.id}`;
  const href = safeHref(job.url);
  return [
    href
      ? h(
          "a",
          { href, target: "_blank", rel: "noopener noreferrer", "data-focus-key": `job:${jobKey(job)}` },
          title,
        )
      : h("span", { class: "job-name" }, title),
    h("span", { class: "sub" }, `${job.project} · ${sourceNames[job.source]} #${job.id}`),
    ...retryNote(job),
  ];
}

/** What a spot interruption did to the job: "interrupted", "interrupted, retried", "retry of #…". */
function retryNote(job: JobView): Child[] {
  const notes: string[] = [];
  if (job.interruptedAt) {
    notes.push(
      job.retry
        ? `interrupted, retried${job.retry.newJobId ? ` as #${job.retry.newJobId}` : ""}`
        : "interrupted",
    );
  }
  if (job.retryOf) notes.push(`retry of #${job.retryOf}`);
  return notes.map((note) => h("span", { class: "badge badge-retry", "data-testid": "job-retry" }, note));
}

const badge = (kind: string, text: string) => h("span", { class: `badge badge-${kind}` }, text);

function emptyOr(rows: unknown[], message: string, build: () => Node): Node {
  return rows.length ? build() : h("p", { class: "empty" }, message);
}

// Pools

interface Card {
  card: HTMLElement;
  body: HTMLElement;
  caption: HTMLElement;
  key: { time: HTMLElement; queued: HTMLElement; capacity: HTMLElement; busy: HTMLElement };
  chart: PoolChart;
  data: ChartData;
  /** The minute under the pointer, if any. */
  cursor: number | null;
}

/** Pool cards, keyed by pool name so each chart lives across refreshes instead of being redrawn. */
export class PoolCards {
  private readonly cards = new Map<string, Card>();
  private created = 0;

  constructor(private readonly container: HTMLElement) {}

  render(status: Status): void {
    const seen = new Set<string>();
    for (const pool of status.pools) {
      seen.add(pool.name);
      const card = this.cards.get(pool.name) ?? this.create(pool.name);
      card.body.replaceChildren(...poolBody(pool, card.card.getAttribute("aria-labelledby") ?? ""));
      const data = chartData(status.series, pool.name);
      card.caption.textContent = describeSeries(data);
      card.data = data;
      // In document order: appending an element that is already here moves it.
      this.container.appendChild(card.card);
      card.chart.update(data);
      showKey(card);
    }
    for (const [name, card] of this.cards) {
      if (seen.has(name)) continue;
      card.chart.destroy();
      card.card.remove();
      this.cards.delete(name);
    }
    if (status.pools.length === 0) {
      this.container.replaceChildren(h("p", { class: "empty" }, "No pools are configured."));
    } else {
      this.container.querySelector(":scope > .empty")?.remove();
    }
  }

  rebuildCharts(): void {
    for (const card of this.cards.values()) card.chart.rebuild();
  }

  private create(name: string): Card {
    const titleId = `pool-title-${++this.created}`;
    const body = h("div", { class: "pool-body" });
    const plot = h("div", { class: "chart-plot", "aria-hidden": "true" });
    const caption = h("figcaption", { class: "chart-caption" });
    const key = { time: h("b"), queued: h("b"), capacity: h("b"), busy: h("b") };
    const card = h(
      "article",
      { class: "card pool", "data-testid": "pool-card", "data-pool": name, "aria-labelledby": titleId },
      body,
      h(
        "figure",
        { class: "chart", "data-testid": "pool-chart" },
        // The caption describes the chart for screen readers; the key is for the eye.
        h(
          "div",
          { class: "chart-key", "aria-hidden": "true" },
          h("span", { class: "key-time" }, key.time),
          h("span", { class: "key key-queued" }, "Queued ", key.queued),
          h("span", { class: "key key-capacity" }, "Capacity ", key.capacity),
          h("span", { class: "key key-busy" }, "Busy ", key.busy),
        ),
        plot,
        caption,
      ),
    );
    const entry: Card = {
      card,
      body,
      caption,
      key,
      data: [[], [], [], []],
      cursor: null,
      chart: new PoolChart(plot, (index) => {
        entry.cursor = index;
        showKey(entry);
      }),
    };
    this.cards.set(name, entry);
    return entry;
  }
}

/** The values at the minute under the pointer, or the latest. */
function showKey(card: Card): void {
  const [times, queued, capacity, busy] = card.data;
  const last = times.length - 1;
  const index = card.cursor !== null && card.cursor <= last ? card.cursor : last;
  const value = (column: (number | null)[]) => String(column[index] ?? "—");
  const time = times[index];
  card.key.time.textContent = card.cursor === null || time === undefined ? "Now" : formatMinute(time * 1000);
  card.key.queued.textContent = value(queued);
  card.key.capacity.textContent = value(capacity);
  card.key.busy.textContent = value(busy);
}

function poolBody(pool: PoolStatus, titleId: string): Node[] {
  const { warm, burst, warmPool } = pool.capacity;
  const waitingLong = (pool.oldestQueuedSeconds ?? 0) >= 300;
  const stat = (label: string, value: Child, testId: string, tone?: string) =>
    h(
      "div",
      { class: tone ? `stat stat-${tone}` : "stat" },
      h("dt", null, label),
      h("dd", { "data-testid": testId }, value),
    );
  const capacityRow = (label: string, actual: number, wanted: number, testId: string) =>
    h(
      "tr",
      { "data-testid": testId },
      h("th", { scope: "row" }, label),
      h("td", { class: "num" }, actual),
      h(
        "td",
        { class: "num" },
        wanted,
        actual < wanted
          ? h("span", { class: "trend up", title: "scaling up" }, " ↑", hidden(" scaling up"))
          : null,
        actual > wanted
          ? h("span", { class: "trend down", title: "scaling down" }, " ↓", hidden(" scaling down"))
          : null,
      ),
    );
  const states = (Object.entries(pool.instances) as [string, number][]).filter(([, count]) => count > 0);
  return [
    h(
      "header",
      { class: "pool-head" },
      h("h3", { id: titleId }, pool.name),
      h("span", { class: "arch" }, pool.architecture),
      labelList(pool.labels),
    ),
    h(
      "dl",
      { class: "stats" },
      stat("Queued", pool.queued, "pool-queued", pool.queued > 0 ? "active" : undefined),
      stat(
        "Oldest wait",
        formatDuration(pool.oldestQueuedSeconds),
        "pool-oldest-wait",
        waitingLong ? "warn" : undefined,
      ),
      stat("Running", pool.running, "pool-running"),
      stat("Busy slots", `${pool.slots.busy} / ${pool.slots.total}`, "pool-slots"),
    ),
    h(
      "table",
      { class: "capacity", "data-testid": "pool-capacity" },
      h("caption", null, "Capacity, in instances"),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("td", null),
          h("th", { scope: "col", class: "num" }, "Actual"),
          h("th", { scope: "col", class: "num" }, "Desired"),
        ),
      ),
      h(
        "tbody",
        null,
        capacityRow(`Warm · ${warm.market ?? "on-demand"}`, warm.actual, warm.desired, "pool-capacity-warm"),
        capacityRow("Burst · spot", burst.actual, burst.desired, "pool-capacity-burst"),
        capacityRow("Warm pool · stopped", warmPool.stopped, warmPool.target, "pool-capacity-warm-pool"),
      ),
    ),
    ...heldLine(pool),
    ...storesLine(pool),
    h(
      "div",
      { class: "pool-instances" },
      states.length
        ? h(
            "ul",
            { class: "states", "aria-label": "Instances by state" },
            states.map(([state, count]) => h("li", { class: `badge badge-${state}` }, `${count} ${state}`)),
          )
        : h("span", null, "No instances"),
      h("span", { class: "sub" }, `at most ${plural(pool.maxInstances, "instance")}`),
    ),
  ];
}

/** Where the stores of the pool's recent jobs came from: the warm-hit rate and the three counts. */
/** A pool holding its spot runners for retries: why its spot slots take no job. */
function heldLine(pool: PoolStatus): Node[] {
  const held = pool.heldForRetries;
  if (!held) return [];
  return [
    h(
      "p",
      { class: "pool-held", "data-testid": "pool-held", role: "status" },
      `Spot runners held for ${plural(held.jobs, "retry", "retries")} since ${formatClock(held.since)}: `,
      "they take no job until the retried jobs start on on-demand capacity.",
    ),
  ];
}

function storesLine(pool: PoolStatus): Node[] {
  const stores = pool.stores;
  if (!stores) return [];
  const hours = Math.round(stores.windowSeconds / 3600);
  const rate = stores.warmHitRate === null ? "—" : `${Math.round(stores.warmHitRate * 100)}%`;
  return [
    h(
      "div",
      { class: "pool-stores", "data-testid": "pool-stores" },
      h("span", { class: "sub" }, `Warm hits, jobs started in the last ${plural(hours, "hour")}`),
      h("b", { "data-testid": "pool-warm-hit-rate" }, rate),
      h(
        "ul",
        { class: "states", "aria-label": "Jobs by where their store came from" },
        (["warm", "substituted", "cold"] as const).map((origin) =>
          h(
            "li",
            { class: `badge badge-origin-${origin}`, "data-testid": `pool-origin-${origin}` },
            `${stores[origin]} ${origin}`,
          ),
        ),
      ),
    ),
  ];
}

// Jobs

const jobRow = (job: JobView) => ({
  "data-testid": "job-row",
  "data-job": jobKey(job),
  "data-status": job.status,
  "data-origin": job.origin ?? "",
});
/**
 * Where the job's store came from: warm, substituted from the stage's binary cache (inferred), or
 * cold; a dash before it started, or on an instance Hearth does not know.
 */
const originColumn: Column<JobView> = {
  label: "Store",
  cell: (job) =>
    job.origin
      ? h(
          "span",
          {
            class: `badge badge-origin-${job.origin}`,
            "data-testid": "job-origin",
            title:
              job.origin === "substituted"
                ? "not warm: substituted from the binary cache, which the pool filled (inferred)"
                : job.origin === "warm"
                  ? "its instance's store held the job's cache key"
                  : "built what the store lacked",
          },
          job.origin,
        )
      : "—",
};
const jobColumn: Column<JobView> = { label: "Job", cell: jobCell };
const poolColumn: Column<JobView> = { label: "Pool", cell: (job) => job.pool ?? "—" };
/** A job not started yet, queued or waiting for a person: what it asks for, and how long it has waited. */
const notStartedColumns: Column<JobView>[] = [
  jobColumn,
  { label: "Labels", cell: (job) => labelList(job.labels) },
  poolColumn,
  { label: "Waiting", numeric: true, cell: (job) => formatDuration(job.waitSeconds) },
];
const instanceColumn: Column<JobView> = {
  label: "Instance",
  cell: (job) => (job.instanceId ? h("code", null, job.instanceId) : "—"),
};

export function queueTable(jobs: JobView[]): Node {
  // Longest waiting first: the reader's question is "who has waited too long".
  const rows = [...jobs].sort((a, b) => (b.waitSeconds ?? 0) - (a.waitSeconds ?? 0));
  return emptyOr(rows, "Nothing is queued.", () =>
    table({
      labelledBy: "queue-title",
      testId: "queue-table",
      rows,
      row: jobRow,
      columns: notStartedColumns,
    }),
  );
}

/**
 * Below the queue: how much of it is shown, and buttons to the next (newer) page and back. The API
 * sends the queue a page at a time, oldest first.
 */
export function queuePager(options: {
  shown: number;
  total: number;
  first: boolean;
  next: string | null;
  onOlder: (next: string) => void;
  onNewer: () => void;
}): Node {
  const { shown, total, first, next } = options;
  const buttons: HTMLElement[] = [];
  if (!first) {
    const back = h("button", { type: "button", "data-testid": "queue-previous" }, "Previous page");
    back.addEventListener("click", () => options.onNewer());
    buttons.push(back);
  }
  if (next !== null) {
    const more = h("button", { type: "button", "data-testid": "queue-next" }, "Next page");
    more.addEventListener("click", () => options.onOlder(next));
    buttons.push(more);
  }
  const text =
    shown === total ? "" : `${formatCount(shown)} of ${formatCount(total)} queued jobs shown, oldest first.`;
  return h("div", { class: "pager", "data-testid": "queue-pager", hidden: !text && !buttons.length }, [
    h("span", null, text),
    ...buttons,
  ]);
}

const formatCount = (n: number) => n.toLocaleString("en");

export function unroutableBody(status: Status): Node[] {
  const { count, jobs } = status.unroutable;
  const more = count - jobs.length;
  return [
    h(
      "p",
      null,
      `${plural(count, "queued job")} ${count === 1 ? "asks" : "ask"} for labels no pool has, so Hearth starts nothing for ${count === 1 ? "it" : "them"}. Add a pool with these labels, or change the job's labels.`,
    ),
    table({
      labelledBy: "unroutable-title",
      testId: "unroutable-table",
      rows: jobs,
      row: jobRow,
      columns: [
        jobColumn,
        { label: "Labels", cell: (job) => labelList(job.labels) },
        { label: "Waiting", numeric: true, cell: (job) => formatDuration(job.waitSeconds) },
      ],
    }),
    ...(more > 0 ? [h("p", { class: "sub" }, `and ${more} more not shown`)] : []),
  ];
}

const forgeNames = { github: "GitHub", gitlab: "GitLab" } as const;

type TokenRow = PollingView["forges"][number]["tokens"][number] & {
  forge: "github" | "gitlab";
  skipped: boolean;
};

/**
 * The last poll of the forges: when, its calls and what it found, each token's budget left (by
 * reconciliation's share, and as the forge last said), and the listings it could not read, whose
 * jobs are unknown rather than none.
 */
export function pollingBody(polling: PollingView): Node[] {
  const tokens: TokenRow[] = polling.forges.flatMap((forge) =>
    forge.status === "skipped"
      ? []
      : forge.tokens.map((token) => ({ ...token, forge: forge.forge, skipped: false })),
  );
  const skipped = polling.forges.filter((forge) => forge.status === "skipped");
  const more = polling.unknownCount - polling.unknown.length;
  return [
    h(
      "p",
      { "data-testid": "polling-summary" },
      h("time", { datetime: polling.at }, `Last poll ${formatClock(polling.at)}`),
      `: ${plural(polling.calls, "call")}; ${plural(polling.found, "job")} listed, ${polling.recorded} new to the ledger, ${polling.queued} queued for a pool`,
      polling.deliveriesRead
        ? `; ${plural(polling.deliveriesRead, "failed webhook")} read from GitHub's delivery log`
        : "",
      polling.redelivered ? `; ${plural(polling.redelivered, "failed webhook")} redelivered` : "",
      ".",
    ),
    ...(skipped.length
      ? [
          h(
            "p",
            { class: "sub" },
            `${skipped.map((forge) => forgeNames[forge.forge]).join(" and ")}: another poll held the lease; left to it.`,
          ),
        ]
      : []),
    emptyOr(tokens, "No forge is configured for polling.", () =>
      table({
        labelledBy: "polling-title",
        testId: "polling-tokens",
        rows: tokens,
        row: (token) => ({ "data-testid": "polling-token", "data-forge": token.forge }),
        columns: [
          { label: "Forge", cell: (token) => forgeNames[token.forge] },
          { label: "Token", cell: (token) => h("code", null, token.token) },
          { label: "Calls", numeric: true, cell: (token) => token.calls },
          {
            label: "Share left",
            numeric: true,
            cell: (token) => h("span", { "data-testid": "polling-share-left" }, formatCount(token.shareLeft)),
          },
          {
            label: "Forge says left",
            numeric: true,
            cell: (token) =>
              token.forgeRemaining === null
                ? "–"
                : `${formatCount(token.forgeRemaining)} of ${formatCount(token.limit)}`,
          },
        ],
      }),
    ),
    ...(polling.unknownCount
      ? [
          h(
            "p",
            { class: "sub" },
            `${plural(polling.unknownCount, "listing")} unknown: their jobs are not known to be none.`,
          ),
          h(
            "ul",
            { class: "unknown-listings", "data-testid": "polling-unknown" },
            polling.unknown.map((listing) =>
              h("li", null, `${forgeNames[listing.forge]} ${listing.listing}: ${listing.reason}`),
            ),
          ),
          ...(more > 0 ? [h("p", { class: "sub" }, `and ${more} more not shown`)] : []),
        ]
      : []),
  ];
}

export function runningTable(jobs: JobView[]): Node {
  return emptyOr(jobs, "No job is running.", () =>
    table({
      labelledBy: "running-title",
      testId: "running-table",
      rows: jobs,
      row: jobRow,
      columns: [
        jobColumn,
        poolColumn,
        instanceColumn,
        originColumn,
        { label: "Waited", numeric: true, cell: (job) => formatDuration(job.waitSeconds) },
        { label: "Running", numeric: true, cell: (job) => formatDuration(job.runSeconds) },
      ],
    }),
  );
}

/** GitHub jobs held by a deployment's protection rules: not demand, so they wait for no instance. */
export function waitingTable(jobs: JobView[]): Node {
  return table({
    labelledBy: "waiting-title",
    testId: "waiting-table",
    rows: jobs,
    row: jobRow,
    columns: notStartedColumns,
  });
}

const conclusionTone = (job: JobView) =>
  job.conclusion === "success"
    ? "success"
    : job.status === "cancelled" || job.conclusion === "cancelled"
      ? "muted"
      : "failure";

export function finishedTable(jobs: JobView[]): Node {
  return emptyOr(jobs, "No job finished recently.", () =>
    table({
      labelledBy: "finished-title",
      testId: "finished-table",
      rows: jobs,
      row: jobRow,
      columns: [
        jobColumn,
        {
          label: "Result",
          cell: (job) =>
            badge(
              conclusionTone(job),
              `${job.conclusion ?? job.status}${job.failureReason ? ` (${job.failureReason})` : ""}`,
            ),
        },
        poolColumn,
        instanceColumn,
        originColumn,
        { label: "Waited", numeric: true, cell: (job) => formatDuration(job.waitSeconds) },
        { label: "Ran", numeric: true, cell: (job) => formatDuration(job.runSeconds) },
      ],
    }),
  );
}

// Instances

/** Busy instances first, stopped ones last; every display state has its place. */
const stateOrder: Record<DisplayState, number> = {
  busy: 0,
  draining: 1,
  suspect: 2,
  launching: 3,
  ready: 4,
  stopped: 5,
};

/** One line per runner: its forge and slot (or GitLab manager), id, state and job. */
function runnersCell(runners: InstanceView["runners"]): Node | string {
  if (!runners.length) return h("span", { class: "sub" }, "none");
  return h(
    "ul",
    { class: "runners", "data-testid": "instance-runners" },
    ...runners.map((runner) =>
      h(
        "li",
        { "data-forge": runner.forge, "data-state": runner.state, title: runner.name },
        runner.forge === "github"
          ? `GitHub${runner.slot === null ? "" : ` slot ${runner.slot}`}`
          : "GitLab manager",
        " ",
        h("code", null, runner.runnerId === null ? "…" : `#${runner.runnerId}`),
        " ",
        h("span", { class: "sub-inline" }, runner.state),
        runner.job ? h("span", { class: "sub-inline" }, ` · job ${runner.job.id}`) : null,
      ),
    ),
  );
}

export function instancesTable(instances: InstanceView[]): Node {
  const rows = [...instances].sort(
    (a, b) =>
      a.pool.localeCompare(b.pool) || stateOrder[a.state] - stateOrder[b.state] || a.id.localeCompare(b.id),
  );
  return emptyOr(rows, "No instances.", () =>
    table({
      labelledBy: "instances-title",
      testId: "instances-table",
      rows,
      row: (instance) => ({
        "data-testid": "instance-row",
        "data-instance": instance.id,
        "data-state": instance.state,
        "data-waits-for-capacity": instance.waitsForCapacity === true,
      }),
      columns: [
        {
          label: "Instance",
          cell: (instance) => [
            h("code", null, instance.id),
            h("span", { class: "sub" }, instance.instanceType),
          ],
        },
        { label: "Pool", cell: (instance) => instance.pool },
        {
          label: "Group",
          cell: (instance) => [
            instance.group,
            h("span", { class: "sub" }, `${instance.market} · ${instance.az}`),
          ],
        },
        {
          label: "State",
          cell: (instance) => [
            badge(instance.state, instance.state),
            instance.waitsForCapacity
              ? h(
                  "span",
                  {
                    class: "sub",
                    title: "Stopped by a spot interruption, store kept: EC2 starts it when capacity returns",
                  },
                  "waits for spot capacity",
                )
              : null,
          ],
        },
        { label: "Slots", numeric: true, cell: (instance) => `${instance.busySlots} / ${instance.slots}` },
        { label: "Runners", cell: (instance) => runnersCell(instance.runners) },
        {
          label: "Warmth",
          cell: (instance) => [
            instance.warmCacheKeys === 0
              ? h("span", { class: "cold" }, "cold")
              : h("span", { class: "warm" }, plural(instance.warmCacheKeys, "cache key")),
          ],
        },
        { label: "Store", cell: storeCell },
        { label: "Uptime", numeric: true, cell: (instance) => formatDuration(instance.uptimeSeconds) },
        {
          label: "Heartbeat",
          numeric: true,
          cell: (instance) =>
            instance.lastHeartbeatSeconds === null ? "—" : formatAgo(instance.lastHeartbeatSeconds * 1000),
        },
      ],
    }),
  );
}

/**
 * The store's size, its free disk and how far its builds are behind the binary cache, as the agent
 * last reported; "—" when it reported none of them.
 */
function storeCell(instance: InstanceView): Node[] | string {
  const parts: Node[] = [];
  if (instance.storeBytes !== null) parts.push(h("span", null, formatBytes(instance.storeBytes)));
  if (instance.freeDiskBytes != null)
    parts.push(
      h("span", { class: "sub", "data-testid": "free-disk" }, `${formatBytes(instance.freeDiskBytes)} free`),
    );
  if (instance.pushLagSeconds != null)
    parts.push(
      h(
        "span",
        {
          class: "sub",
          "data-testid": "push-lag",
          title: "The oldest build not yet pushed to the binary cache",
        },
        instance.pushLagSeconds === 0
          ? "cache: all pushed"
          : `cache: ${formatDuration(instance.pushLagSeconds)} behind`,
      ),
    );
  return parts.length ? parts : "—";
}

// Timeline

const kindNames = {
  decision: "Decision",
  runner: "Runners",
  interruption: "Interruption",
  retry: "Retry",
  sweep: "Sweep",
  poll: "Polling",
  error: "Error",
} as const;

/** `freeSlots` → `free slots`. */
const humanize = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();

export function timeline(events: StatusEvent[]): Node {
  return emptyOr(events, "Nothing has happened yet.", () =>
    h(
      "ol",
      { class: "timeline", "data-testid": "timeline" },
      events.map((event) =>
        h(
          "li",
          { class: `event event-${event.kind}`, "data-testid": "event", "data-kind": event.kind },
          h(
            "p",
            { class: "event-meta" },
            h("time", { datetime: event.time }, formatClock(event.time)),
            badge(event.kind, kindNames[event.kind]),
            event.pool
              ? h("span", { class: "event-pool" }, event.pool)
              : h("span", { class: "event-pool" }, "fleet"),
          ),
          h("p", { class: "reason" }, event.reason),
          event.details && Object.keys(event.details).length
            ? h(
                "dl",
                { class: "details" },
                Object.entries(event.details).map(([key, value]) =>
                  h("div", null, h("dt", null, humanize(key)), h("dd", null, value)),
                ),
              )
            : null,
        ),
      ),
    ),
  );
}
