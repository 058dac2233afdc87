import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import type { Status } from "@hearth/core/status";
import type { Browser, BrowserContextOptions, Locator, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { exampleStatus } from "../../core/test/fixtures/status";
import { REFRESH_MS } from "../src/freshness";
import { launchChromium, openPage } from "./support/chromium";
import { type FakeApi, servePage } from "./support/server";

/**
 * The built status page in Debian's chromium, against a fake API: what a reader sees, the token
 * flow, the failure banner, and the phone layout.
 */

const webDir = resolve(import.meta.dirname, "..");
const screenshot = resolve(webDir, "../../docs/status-page-example.png");

let outDir: string;
let browser: Browser;
let site: { url: string; close(): Promise<void> };
const api: FakeApi = {
  token: null,
  failWith: null,
  document: () => exampleStatus(),
  sendDate: true,
  authorizations: [],
  webhookLoss: 0.2,
};

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), "hearth-web-"));
  await build({
    configFile: resolve(webDir, "vite.config.ts"),
    logLevel: "error",
    build: { outDir, emptyOutDir: true },
  });
  site = await servePage(outDir, api);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

beforeEach(() => {
  api.token = null;
  api.failWith = null;
  api.document = () => exampleStatus();
  api.sendDate = true;
  api.authorizations = [];
  api.webhookLoss = 0.2;
});

/** A fresh browser profile; the test fails on any script error or blocked resource (CSP). */
const open = (options: BrowserContextOptions = {}) => openPage(browser, options);

const banner = (page: Page) => page.getByTestId("status-banner");

/**
 * Runs the page's fake clock on, a refresh interval at a time, until `target` is in the page. Each
 * refresh's request is real, and its answer reschedules the next one from whenever it arrives, so
 * the test waits for what the page shows rather than counting timers.
 */
async function advanceUntil(page: Page, target: Locator, limitMs = 120_000): Promise<void> {
  for (let elapsed = 0; ; elapsed += REFRESH_MS) {
    try {
      await target.waitFor({ state: "attached", timeout: 250 });
      return;
    } catch (error) {
      if (elapsed >= limitMs) throw error;
    }
    await page.clock.runFor(REFRESH_MS);
  }
}

/** Boxes that scroll sideways inside the page (a table too wide for its card, say); none should. */
const sidewaysScrollers = (page: Page) =>
  page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>("body *")]
      .filter((element) => /auto|scroll/.test(getComputedStyle(element).overflowX))
      .filter((element) => element.scrollWidth > element.clientWidth)
      .map((element) => element.id || element.className),
  );

describe("the status page", () => {
  it("shows pools, the queue, instances and the timeline", async () => {
    // A fixed time, zone and locale, so the screenshot in the docs changes only when the page does.
    const now = new Date("2026-03-02T14:30:00.000Z");
    api.document = () => exampleStatus(now);
    api.sendDate = false;
    const { page, errors } = await open({ colorScheme: "light", timezoneId: "UTC", locale: "en-GB" });
    await page.clock.setFixedTime(now);
    await page.goto(site.url);

    const cards = page.getByTestId("pool-card");
    await cards.first().waitFor();
    expect(await cards.evaluateAll((all) => all.map((card) => card.getAttribute("data-pool")))).toEqual([
      "linux-x64",
      "linux-arm64",
    ]);
    const x64 = page.locator('[data-testid="pool-card"][data-pool="linux-x64"]');
    expect(await x64.getByTestId("pool-queued").textContent()).toBe("4");
    expect(await x64.getByTestId("pool-oldest-wait").textContent()).toBe("4m 12s");
    expect(await x64.getByTestId("pool-slots").textContent()).toBe("7 / 12");
    expect(await x64.getByTestId("pool-capacity-burst").innerText()).toMatch(/Burst · spot\s+3\s+3/);
    // What each pool's warm group runs on: an Auto Scaling warm pool, or spot stores Hearth keeps.
    expect(await x64.getByTestId("pool-capacity-warm").innerText()).toMatch(/^Warm · on-demand\s+3\s+3/);
    const arm64 = page.locator('[data-testid="pool-card"][data-pool="linux-arm64"]');
    expect(await arm64.getByTestId("pool-capacity-warm").innerText()).toMatch(/^Warm · spot\s+3\s+3/);
    // A pool holding its spot runners for a retry says so; one that holds nothing says nothing.
    expect(await arm64.getByTestId("pool-held").innerText()).toMatch(
      /^Spot runners held for 1 retry since \d\d:\d\d:\d\d: they take no job until/,
    );
    expect(await x64.getByTestId("pool-held").count()).toBe(0);
    expect(await x64.getByTestId("pool-capacity-warm-pool").innerText()).toMatch(/2\s+3 ↑/);
    expect(
      await page.locator('[data-pool="linux-arm64"]').getByTestId("pool-oldest-wait").textContent(),
    ).toBe("—");
    // Where the stores of the pool's recent jobs came from.
    expect(await x64.getByTestId("pool-warm-hit-rate").textContent()).toBe("81%");
    expect(await x64.getByTestId("pool-stores").innerText()).toMatch(
      /last 24 hours\s+81%\s+131 warm\s+22 substituted\s+9 cold/,
    );
    // uPlot drew both charts, with their text alternative.
    expect(await page.locator('[data-testid="pool-chart"] canvas').count()).toBe(2);
    expect(await x64.locator("figcaption").textContent()).toBe(
      "Last hour: queue peaked at 8, now 4; capacity between 4 and 12 slots, now 12.",
    );

    const busy = page.locator('[data-testid="instance-row"][data-instance="i-0a1b2c3d4e5f60001"]');
    expect(await busy.getAttribute("data-state")).toBe("busy");
    expect(await busy.innerText()).toContain("41 cache keys");
    expect(await page.locator('[data-testid="instance-row"][data-state="busy"]').count()).toBe(4);
    // Its runners: each slot's GitHub runner, its id, state and job; another's GitLab manager.
    expect(await busy.getByTestId("instance-runners").innerText()).toMatch(
      /GitHub slot 0 #30114 running · job 28311903001\s+GitHub slot 1 #30117 running · job 28311903002/,
    );
    // A store a spot interruption stopped says it waits for capacity; another stopped one does not.
    const waiting = page.locator('[data-testid="instance-row"][data-waits-for-capacity]');
    expect(await waiting.getAttribute("data-instance")).toBe("i-07aa5e1c2b3d40005");
    expect(await waiting.innerText()).toContain("waits for spot capacity");
    const parked = page.locator('[data-testid="instance-row"][data-instance="i-07aa5e1c2b3d40004"]');
    expect(await parked.innerText()).not.toContain("waits for spot capacity");
    const second = page.locator('[data-testid="instance-row"][data-instance="i-0a1b2c3d4e5f60002"]');
    expect(await second.locator('[data-forge="gitlab"]').innerText()).toBe("GitLab manager #812 registered");
    expect(await second.locator('[data-forge="gitlab"]').getAttribute("title")).toBe("s_4e1f0a9c2b7d");
    // Each store's size, free disk and how far its builds are behind the binary cache.
    expect(await busy.innerText()).toContain("45.0 GiB");
    expect(await busy.getByTestId("free-disk").textContent()).toBe("50.0 GiB free");
    expect(await busy.getByTestId("push-lag").textContent()).toBe("cache: all pushed");
    expect(await second.getByTestId("free-disk").textContent()).toBe("3.5 GiB free");
    expect(await second.getByTestId("push-lag").textContent()).toBe("cache: 1h 30m behind");
    expect(await parked.getByTestId("push-lag").count()).toBe(0);

    const queued = page.getByTestId("queue-table").locator('[data-job="gitlab#41877"]');
    expect(await queued.innerText()).toContain("4m 12s");
    expect(await queued.getByRole("link").getAttribute("href")).toBe(
      "https://gitlab.example.com/platform-infrastructure/terraform-modules-monorepo/-/jobs/41877",
    );
    expect(await page.getByTestId("running-table").getByTestId("job-row").count()).toBe(8);
    const origin = (table: string, job: string) =>
      page.getByTestId(table).locator(`[data-job="${job}"]`).getByTestId("job-origin").textContent();
    expect(await origin("running-table", "github#28311903001")).toBe("warm");
    expect(await origin("running-table", "gitlab#41870")).toBe("substituted");
    expect(await origin("finished-table", "gitlab#41866")).toBe("cold");
    // A job GitLab ended at its runner's maximum_timeout says so.
    const timedOut = page.getByTestId("finished-table").locator('[data-job="gitlab#41866"]');
    expect(await timedOut.innerText()).toContain("failure (job_execution_timeout)");
    expect(await page.getByTestId("unroutable").innerText()).toContain("train (cuda)");

    const decision = page.locator('[data-testid="event"][data-kind="decision"]').first();
    expect(await decision.innerText()).toContain("Burst 2 → 3");
    expect(await page.locator('[data-testid="event"][data-kind="interruption"]').innerText()).toContain(
      "Spot interruption warning for i-0f9e8d7c6b5a40002",
    );

    // A job a spot interruption took down, and that Hearth retried, says so in its row and the timeline.
    const retried = page.getByTestId("finished-table").locator('[data-job="gitlab#41866"]');
    expect(await retried.getByTestId("job-retry").innerText()).toBe("interrupted, retried as #41870");
    expect(await page.locator('[data-testid="event"][data-kind="retry"]').innerText()).toContain(
      "retried as job 41870",
    );

    expect(await banner(page).getAttribute("data-state")).toBe("live");
    expect(await banner(page).isVisible()).toBe(false);
    expect(await page.getByTestId("stage").textContent()).toBe("local");
    expect(await page.title()).toBe("(4) Hearth · local");
    // Accessible names hold: tables are labelled by their section headings.
    expect(await page.getByRole("table", { name: /Instances/ }).count()).toBe(1);
    expect(await page.getByRole("region", { name: /Decisions and events/ }).count()).toBe(1);

    expect(await sidewaysScrollers(page)).toEqual([]);

    await page.screenshot({ path: screenshot, fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("sets local mode's webhook loss rate in the simulation panel, refusing a share out of range", async () => {
    api.token = "s3cret-status-token";
    const { page, errors } = await open();
    await page.goto(site.url);
    await page.getByLabel("Token", { exact: true }).fill(api.token);
    await page.getByRole("button", { name: "Show the status" }).click();
    const input = page.getByTestId("loss-input");
    await input.waitFor();
    await page.waitForFunction(
      () => (document.querySelector("#loss-input") as HTMLInputElement | null)?.value === "20",
    );
    await input.fill("150");
    await page.getByRole("button", { name: "Set" }).click();
    expect(await page.getByTestId("loss-error").textContent()).toContain("from 0 to 100");
    expect(api.webhookLoss).toBe(0.2);
    await input.fill("45");
    await page.getByRole("button", { name: "Set" }).click();
    await page.waitForFunction(() => document.querySelector("#loss-error")?.hasAttribute("hidden"));
    await expect.poll(() => api.webhookLoss).toBe(0.45);
    expect(await input.inputValue()).toBe("45");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("shows no simulation panel for a deployed stage", async () => {
    api.document = () => ({ ...exampleStatus(), stage: "prod" });
    api.webhookLoss = undefined;
    const { page, errors } = await open();
    await page.goto(site.url);
    await page.getByTestId("pool-card").first().waitFor();
    expect(await page.getByTestId("simulation").isVisible()).toBe(false);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("shows jobs held for approval apart from the queue, and no such section when none waits", async () => {
    const now = new Date("2026-03-02T14:30:00.000Z");
    const example = exampleStatus(now);
    const approval = {
      ...(example.jobs.queued[0] as (typeof example.jobs.queued)[number]),
      source: "github" as const,
      id: "28311909999",
      name: "deploy / production",
      status: "waiting" as const,
      waitSeconds: 3_720,
    };
    api.document = () => ({ ...example, jobs: { ...example.jobs, waiting: [approval] } });
    const { page, errors } = await open({ timezoneId: "UTC", locale: "en-GB" });
    await page.clock.setFixedTime(now);
    await page.goto(site.url);
    const waiting = page.getByTestId("waiting");
    await waiting.getByTestId("job-row").first().waitFor();
    expect(await page.locator("#waiting-count").textContent()).toBe("1");
    const key = "github#28311909999";
    const row = waiting.locator(`[data-job="${key}"]`);
    expect(await row.textContent()).toContain("deploy / production");
    expect(await row.textContent()).toContain("1h 02m");
    // Not in the queue: it is not demand.
    expect(await page.getByTestId("queue-table").locator(`[data-job="${key}"]`).count()).toBe(0);

    // A document without the list (none waits, or an older API's): the section is hidden.
    api.document = () => exampleStatus(now);
    await advanceUntil(page, page.locator('[data-testid="waiting"][hidden]'));
    expect(await waiting.isVisible()).toBe(false);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("asks for the token on 401, and again when the token is wrong", async () => {
    api.token = "s3cret-status-token";
    const { page, errors } = await open();
    await page.goto(site.url);

    const form = page.getByTestId("token-form");
    await form.waitFor();
    expect(await page.getByTestId("pools").isVisible()).toBe(false);
    expect(await page.getByTestId("token-error").isVisible()).toBe(false);

    await page.getByLabel("Token", { exact: true }).fill("not-the-token");
    await page.getByRole("button", { name: "Show the status" }).click();
    await page.getByTestId("token-error").waitFor();
    expect(await page.getByTestId("token-error").textContent()).toContain("did not accept this token");
    expect(await form.isVisible()).toBe(true);
    expect(await page.getByLabel("Token", { exact: true }).inputValue()).toBe("");

    await page.getByLabel("Token", { exact: true }).fill(api.token);
    await page.getByRole("button", { name: "Show the status" }).click();
    await page.getByTestId("pool-card").first().waitFor();
    expect(await form.isVisible()).toBe(false);
    expect(api.authorizations.at(-1)).toBe("Bearer s3cret-status-token");
    expect(api.authorizations).toContain("Bearer not-the-token");

    // Kept for the session: a reload goes straight to the data, and the token stays out of the URL.
    await page.reload();
    await page.getByTestId("pool-card").first().waitFor();
    expect(await form.isVisible()).toBe(false);
    expect(page.url()).not.toContain("s3cret");

    await page.getByTestId("forget-token").click();
    expect(await form.isVisible()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("says when the API fails or the data is stale, and recovers", async () => {
    const { page, errors } = await open();
    await page.clock.install();
    await page.goto(site.url);
    await page.getByTestId("pool-card").first().waitFor();
    const state = (name: string, text?: string) =>
      page.locator(`[data-testid="status-banner"][data-state="${name}"]`, text ? { hasText: text } : {});

    api.failWith = 500;
    await advanceUntil(page, state("error"));
    const failed = await banner(page).textContent();
    expect(failed).toContain("HTTP 500: the ledger did not answer");
    expect(failed).toContain("Showing data from");
    // The last data stays on screen while the API is down.
    expect(await page.getByTestId("pool-card").count()).toBe(2);

    await advanceUntil(page, state("error", "The data below is stale"));

    api.failWith = null;
    await advanceUntil(page, state("live"));
    expect(await banner(page).isVisible()).toBe(false);

    // A document the control plane stopped updating is flagged even though the request succeeds.
    api.document = () => exampleStatus(new Date(Date.now() - 120_000));
    await advanceUntil(page, state("stale"));
    expect(await banner(page).textContent()).toContain("The status is stale");

    // And one this page cannot read is an error, not a blank page.
    api.document = () => ({ ...exampleStatus(), pools: "none" });
    await advanceUntil(page, state("error"));
    expect(await banner(page).textContent()).toContain("unexpected document (pools");
    expect(errors.filter((error) => !error.includes("500"))).toEqual([]);
    await page.context().close();
  });

  it("keeps its JavaScript under 60 KB gzipped", async () => {
    const assets = join(outDir, "assets");
    const scripts = (await readdir(assets)).filter((name) => name.endsWith(".js"));
    expect(scripts.length).toBeGreaterThan(0);
    let gzipped = 0;
    for (const name of scripts) gzipped += gzipSync(await readFile(join(assets, name)), { level: 9 }).length;
    expect(gzipped).toBeLessThan(60 * 1024);
  });

  it("fits a phone and shows hostile text as text", async () => {
    const hostile = '<img src=x onerror="window.pwned=1">';
    api.document = () => {
      const status: Status = exampleStatus();
      const [first] = status.jobs.queued;
      if (first) {
        first.name = `${hostile} ${"a-very-long-job-name-without-any-spaces-".repeat(3)}`;
        first.labels = [...first.labels, "a-label-that-is-much-too-long-for-a-phone-screen"];
      }
      status.events[0] = {
        ...status.events[0],
        reason: `<script>window.pwned=2</script>${hostile}`,
      } as Status["events"][0];
      return status;
    };
    const { page, errors } = await open({
      viewport: { width: 375, height: 812 },
      isMobile: true,
      hasTouch: true,
    });
    await page.goto(site.url);
    await page.getByTestId("pool-card").first().waitFor();

    const overflow = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    }));
    expect(overflow.viewport).toBe(375);
    expect(overflow.page).toBeLessThanOrEqual(overflow.viewport);
    expect(await sidewaysScrollers(page)).toEqual([]);

    expect(await page.getByTestId("queue-table").innerText()).toContain(hostile);
    expect(await page.getByTestId("timeline").innerText()).toContain("<script>window.pwned=2</script>");
    expect(await page.locator("main img, main script").count()).toBe(0);
    expect(await page.evaluate(() => (window as { pwned?: number }).pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("keeps a 256-character label inside its card, on a wide screen and a phone", async () => {
    const long = `nix-${"x".repeat(252)}`;
    api.document = () => {
      const status: Status = exampleStatus();
      const [pool] = status.pools;
      if (pool) pool.labels = [...pool.labels, long];
      const [first] = status.jobs.queued;
      if (first) first.labels = [...first.labels, long];
      return status;
    };
    for (const viewport of [
      { width: 1280, height: 900 },
      { width: 375, height: 812 },
    ]) {
      const { page, errors } = await open({ viewport });
      await page.goto(site.url);
      const card = page.getByTestId("pool-card").first();
      await card.waitFor();
      const escaped = await page.evaluate((text) => {
        const outside: string[] = [];
        for (const item of document.querySelectorAll<HTMLElement>(".labels li")) {
          if (item.textContent !== text) continue;
          const box = item.getBoundingClientRect();
          const holder = item.closest<HTMLElement>("[data-testid=pool-card], td, .card") ?? document.body;
          const bounds = holder.getBoundingClientRect();
          if (box.right > bounds.right + 0.5 || box.left < bounds.left - 0.5) outside.push(holder.className);
          // The whole label stays readable on hover.
          if (item.title !== text) outside.push("no title");
        }
        return outside;
      }, long);
      expect(escaped).toEqual([]);
      expect(await card.locator(".labels li", { hasText: "nix-xxxx" }).count()).toBe(1);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
        viewport.width,
      );
      expect(errors).toEqual([]);
      await page.context().close();
    }
  });

  it("pages through a long queue with the API's cursor", async () => {
    api.document = (cursor) => {
      const status: Status = exampleStatus();
      const [job] = status.jobs.queued;
      if (!job) throw new Error("the example has a queued job");
      status.jobs.queuedCount = 250;
      status.jobs.queued = [{ ...job, source: "github", id: cursor === null ? "page-1" : `after-${cursor}` }];
      status.jobs.next = cursor === null ? "c1" : cursor === "c1" ? "c2" : null;
      return status;
    };
    const { page, errors } = await open();
    await page.goto(site.url);
    const rows = page.getByTestId("queue-table").getByTestId("job-row");
    await page.locator('[data-job="github#page-1"]').waitFor();
    expect(await page.locator("#queue-count").innerText()).toBe("250");
    expect(await page.getByTestId("queue-pager").innerText()).toContain("1 of 250 queued jobs shown");
    await page.getByTestId("queue-next").click();
    await page.locator('[data-job="github#after-c1"]').waitFor();
    await page.getByTestId("queue-next").click();
    await page.locator('[data-job="github#after-c2"]').waitFor();
    expect(await page.getByTestId("queue-next").count()).toBe(0);
    await page.getByTestId("queue-previous").click();
    await page.locator('[data-job="github#after-c1"]').waitFor();
    expect(await rows.count()).toBe(1);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
