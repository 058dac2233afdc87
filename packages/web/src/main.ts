import type { Status } from "@hearth/core/status";
import "./style.css";
import { fetchStatus, statusUrl, webhookLoss, webhookLossUrl } from "./api";
import { byId, keepingFocus } from "./dom";
import { formatAgo, formatClock } from "./format";
import { dataAge, health, REFRESH_MS, type Received, retryDelay } from "./freshness";
import {
  finishedTable,
  instancesTable,
  PoolCards,
  pollingBody,
  queuePager,
  queueTable,
  runningTable,
  timeline,
  unroutableBody,
  waitingTable,
} from "./render";
import { tokenStore } from "./token";

const url = statusUrl(import.meta.env.VITE_HEARTH_API_URL);
const lossUrl = webhookLossUrl(import.meta.env.VITE_HEARTH_API_URL);

const storage = (name: "sessionStorage" | "localStorage"): Storage | null => {
  try {
    return window[name];
  } catch {
    return null;
  }
};
const tokens = tokenStore(storage("sessionStorage"), storage("localStorage"));

const el = {
  stage: byId("stage"),
  dot: byId("dot"),
  updated: byId("updated-text"),
  forget: byId<HTMLButtonElement>("forget-token"),
  banner: byId("banner"),
  auth: byId("auth"),
  form: byId<HTMLFormElement>("token-form"),
  tokenInput: byId<HTMLInputElement>("token-input"),
  tokenRemember: byId<HTMLInputElement>("token-remember"),
  tokenError: byId("token-error"),
  dashboard: byId("dashboard"),
  unroutable: byId("unroutable"),
  simulation: byId("simulation"),
  polling: byId("polling"),
  waiting: byId("waiting"),
  lossForm: byId<HTMLFormElement>("loss-form"),
  lossInput: byId<HTMLInputElement>("loss-input"),
  lossError: byId("loss-error"),
};

/** Local mode's simulation panel: shown only where a simulated forge answers. */
async function showLoss(rate?: number): Promise<void> {
  const outcome = await webhookLoss(lossUrl, tokens.get(), rate);
  el.simulation.hidden = outcome.kind === "absent" || outcome.kind === "unauthorized";
  el.lossError.hidden = outcome.kind !== "failed";
  el.lossError.textContent = outcome.kind === "failed" ? outcome.reason : "";
  el.lossInput.setAttribute("aria-invalid", String(outcome.kind === "failed"));
  if (outcome.kind === "ok" && document.activeElement !== el.lossInput) {
    el.lossInput.value = String(Math.round(outcome.rate * 100));
  }
}

el.lossForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const percent = el.lossInput.value.trim() === "" ? Number.NaN : Number(el.lossInput.value);
  if (!(percent >= 0 && percent <= 100)) {
    el.lossError.hidden = false;
    el.lossError.textContent = "Enter a share from 0 to 100 %.";
    el.lossInput.setAttribute("aria-invalid", "true");
    el.lossInput.focus();
    return;
  }
  el.lossInput.blur();
  void showLoss(percent / 100);
});
const pools = new PoolCards(byId("pools"));

let received: Received | null = null;
let failure: string | null = null;
let failures = 0;
let locked = false;
let timer: ReturnType<typeof setTimeout> | undefined;
// Answers to superseded requests (e.g. one in flight when a token is submitted) are ignored.
let requestSeq = 0;
/**
 * The page of the queue being read: null for the oldest jobs, else the `jobs.next` that led here.
 * `previous` holds the cursors of the pages before it, to go back one.
 */
let cursor: string | null = null;
const previous: Array<string | null> = [];

function pageUrl(): string {
  return cursor === null ? url : `${url}?cursor=${encodeURIComponent(cursor)}`;
}

function turnPage(to: string | null, back: boolean): void {
  if (back) cursor = previous.pop() ?? null;
  else {
    previous.push(cursor);
    cursor = to;
  }
  void refresh();
}

async function refresh(): Promise<void> {
  clearTimeout(timer);
  const seq = ++requestSeq;
  const token = tokens.get();
  const outcome = await fetchStatus(pageUrl(), token);
  if (seq !== requestSeq) return;

  if (outcome.kind === "unauthorized") {
    if (token !== null) tokens.clear();
    lock(token === null ? null : "The API did not accept this token. Check it and try again.");
    return;
  }
  if (outcome.kind === "ok") {
    received = {
      generatedAt: outcome.status.generatedAt,
      receivedAt: Date.now(),
      serverTime: outcome.serverTime,
    };
    failure = null;
    failures = 0;
    unlock();
    draw(outcome.status);
    // Only local mode (stage `local`) may have a simulated forge; a deployed stage is not asked.
    if (outcome.status.stage === "local" && !el.simulation.dataset.checked) {
      el.simulation.dataset.checked = "true";
      void showLoss();
    }
  } else {
    failure = outcome.reason;
    failures += 1;
  }
  tick();
  schedule(failure === null ? REFRESH_MS : retryDelay(failures));
}

function schedule(delay: number): void {
  clearTimeout(timer);
  // A hidden tab does not poll: every request costs a Lambda invocation and table reads.
  if (!locked && document.visibilityState === "visible") timer = setTimeout(refresh, delay);
}

function draw(status: Status): void {
  keepingFocus(() => {
    el.stage.hidden = false;
    el.stage.textContent = status.stage;
    const queued = status.pools.reduce((sum, pool) => sum + pool.queued, 0);
    document.title = `${queued ? `(${queued}) ` : ""}Hearth · ${status.stage}`;

    pools.render(status);
    el.unroutable.hidden = status.unroutable.count === 0;
    byId("unroutable-count").textContent = status.unroutable.count
      ? `(${status.unroutable.count} ${status.unroutable.count === 1 ? "job" : "jobs"})`
      : "";
    byId("unroutable-body").replaceChildren(...unroutableBody(status));
    byId("queue-count").textContent = String(status.jobs.queuedCount);
    byId("queue-body").replaceChildren(
      queueTable(status.jobs.queued),
      queuePager({
        shown: status.jobs.queued.length,
        total: status.jobs.queuedCount,
        first: cursor === null,
        next: status.jobs.next,
        onOlder: (next) => turnPage(next, false),
        onNewer: () => turnPage(null, true),
      }),
    );
    byId("running-count").textContent = String(status.jobs.running.length);
    byId("running-body").replaceChildren(runningTable(status.jobs.running));
    // Shown only when some job waits for approval (an older API sends no list).
    const waiting = status.jobs.waiting ?? [];
    el.waiting.hidden = waiting.length === 0;
    byId("waiting-count").textContent = String(waiting.length);
    byId("waiting-body").replaceChildren(...(waiting.length ? [waitingTable(waiting)] : []));
    byId("instances-count").textContent = String(status.instances.length);
    byId("instances-body").replaceChildren(instancesTable(status.instances));
    byId("finished-body").replaceChildren(finishedTable(status.jobs.finished));
    byId("timeline-body").replaceChildren(timeline(status.events));
    // Shown once a poll has run (a stage whose status API has no poll shows none).
    el.polling.hidden = !status.polling;
    if (status.polling) byId("polling-body").replaceChildren(...pollingBody(status.polling));
  });
}

/** Once a second: the age in the header, and the banner when freshness changes. */
function tick(): void {
  const now = Date.now();
  const state = health({ received, failure, now, format: formatClock });
  el.dot.dataset.state = state.state;
  el.banner.dataset.state = state.state;
  // Only a changed message is written, so screen readers hear each change once.
  const message = state.message ?? "";
  if (el.banner.textContent !== message) el.banner.textContent = message;
  el.banner.hidden = state.state === "live";
  el.updated.textContent = received
    ? `Updated ${formatClock(received.generatedAt)} · ${formatAgo(dataAge(received, now))}`
    : failure === null
      ? "Connecting…"
      : "Not connected";
}

function lock(message: string | null): void {
  locked = true;
  clearTimeout(timer);
  received = null;
  failure = null;
  el.dashboard.hidden = true;
  el.banner.hidden = true;
  el.forget.hidden = true;
  el.stage.hidden = true;
  el.auth.hidden = false;
  el.tokenError.hidden = message === null;
  el.tokenError.textContent = message ?? "";
  el.updated.textContent = "Waiting for the status token";
  document.title = "Hearth status";
  el.tokenInput.value = "";
  el.tokenInput.setAttribute("aria-invalid", String(message !== null));
  el.tokenInput.focus();
}

function unlock(): void {
  locked = false;
  el.auth.hidden = true;
  el.dashboard.hidden = false;
  el.forget.hidden = tokens.get() === null;
}

el.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = el.tokenInput.value.trim();
  if (!token) {
    el.tokenError.hidden = false;
    el.tokenError.textContent = "Enter the token.";
    el.tokenInput.focus();
    return;
  }
  tokens.set(token, el.tokenRemember.checked);
  el.tokenError.hidden = true;
  el.updated.textContent = "Connecting…";
  void refresh();
});

el.forget.addEventListener("click", () => {
  tokens.clear();
  lock(null);
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !locked) void refresh();
  else clearTimeout(timer);
});

// The canvas takes its colors from the stylesheet, so a scheme change redraws the charts.
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => pools.rebuildCharts());

setInterval(() => {
  if (!locked) tick();
}, 1000);
tick();
void refresh();
