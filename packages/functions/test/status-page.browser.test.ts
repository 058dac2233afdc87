import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import { parseTrace } from "@hearth/core/simulation/trace";
import type { Status } from "@hearth/core/status";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, openPage } from "../../web/test/support/chromium";
import { type DemoJob, demoJobs, replay } from "../src/demo";
import type { LocalHearth } from "../src/local/server";
import { pass, secrets, startTestHearth } from "./support/local";

/**
 * The status page as a newcomer sees it: local mode, fed by the demo, in Debian's chromium. Fleet
 * time runs on a fake clock the test moves; the page polls in real time.
 */

const STATUS_TOKEN = "local-status-token";
const repo = resolve(import.meta.dirname, "../../..");

let hearth: LocalHearth;
let clock: FakeClock;
let browser: Browser;
let jobs: DemoJob[];

beforeAll(async () => {
  // What `npm start` does first: build the page if it is missing or stale.
  execFileSync("node", [resolve(repo, "scripts/ensure-web.mjs")], { cwd: repo, stdio: "inherit" });
  // Fleet time starts now, so that the page (which reads real time) sees fresh data.
  clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  ({ hearth } = await startTestHearth({ clock, statusToken: STATUS_TOKEN, initialWarmPool: 3 }));
  // The demo's bundled trace, its first 40 jobs, sent at once.
  const trace = parseTrace(readFileSync(resolve(repo, "packages/functions/demo/sample-trace.csv"), "utf8"));
  jobs = demoJobs(trace.jobs.slice(0, 40), { speed: 60, firstId: 5_000_000 });
  const result = await replay(jobs, {
    url: hearth.url,
    secrets,
    statusToken: STATUS_TOKEN,
    now: () => new Date(clock.now()),
    waitUntil: async () => {},
  });
  expect(result).toEqual({ sent: 40, refused: 0, dropped: 0 });
  await hearth.idle();
  // Warm instances resume (25 s) and take jobs; spot ones are still booting (75 s).
  await pass(hearth, clock, 30);
  await hearth.tick();
  // One poll of the simulated forges, as the poll timer would: the page shows its figure.
  await hearth.poll();
  await hearth.idle();
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await hearth?.close();
});

describe("the status page on local mode, fed by the demo", () => {
  it("asks for the status token, refuses a wrong one, then shows the fleet at work", async () => {
    const { page, errors } = await openPage(browser, { colorScheme: "light" });
    await page.goto(`${hearth.url}/`);

    const form = page.getByTestId("token-form");
    await form.waitFor();
    await page.getByTestId("token-input").fill("not-the-token");
    await page.getByRole("button", { name: "Show the status" }).click();
    await page.getByTestId("token-error").waitFor();
    await page.getByTestId("token-input").fill(STATUS_TOKEN);
    await page.getByRole("button", { name: "Show the status" }).click();

    const cards = page.getByTestId("pool-card");
    await cards.first().waitFor();
    expect(await cards.evaluateAll((all) => all.map((card) => card.getAttribute("data-pool")))).toEqual([
      "x86_64",
      "aarch64",
    ]);
    const busy = page.locator('[data-testid="instance-row"][data-state="busy"]');
    await busy.first().waitFor();
    expect(await busy.count()).toBeGreaterThan(0);
    const queued = page.getByTestId("queue-table").locator('[data-testid="job-row"][data-status="queued"]');
    await queued.first().waitFor();
    expect(await queued.count()).toBeGreaterThan(0);
    const decision = page.locator('[data-testid="event"][data-kind="decision"]');
    await decision.first().waitFor();
    expect(await decision.first().innerText()).toMatch(/launch|resume|waiting/i);
    expect(await page.getByTestId("running-table").getByTestId("job-row").count()).toBeGreaterThan(0);
    // The last poll: its calls and each forge token's budget left.
    const polling = page.getByTestId("polling");
    await polling.waitFor();
    expect(await page.getByTestId("polling-summary").innerText()).toMatch(
      /^Last poll .*: \d+ calls?; \d+ jobs? listed/,
    );
    const tokens = page.getByTestId("polling-token");
    expect(await tokens.evaluateAll((rows) => rows.map((row) => row.getAttribute("data-forge")))).toEqual([
      "github",
      "github",
      "gitlab",
    ]);
    for (const left of await page.getByTestId("polling-share-left").allInnerTexts()) {
      expect(Number(left.replace(/,/g, ""))).toBeGreaterThan(0);
    }

    await page.screenshot({ path: resolve(repo, "docs/status-page.png"), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("shows where each job's store came from, as the simulated stores ran it, and each pool's warm-hit rate", async () => {
    // The first jobs finish, and the same jobs run again: some on a store their key warmed, some on
    // another store of the pool, which substitutes what the first run pushed to the binary cache.
    await pass(hearth, clock, 240);
    const again = demoJobs(
      parseTrace(readFileSync(resolve(repo, "packages/functions/demo/sample-trace.csv"), "utf8")).jobs.slice(
        0,
        40,
      ),
      { speed: 60, firstId: 6_000_000 },
    );
    jobs.push(...again);
    const result = await replay(again, {
      url: hearth.url,
      secrets,
      statusToken: STATUS_TOKEN,
      now: () => new Date(clock.now()),
      waitUntil: async () => {},
    });
    expect(result).toEqual({ sent: 40, refused: 0, dropped: 0 });
    await hearth.idle();
    await pass(hearth, clock, 240);
    await hearth.tick();
    await hearth.idle();
    const status = (await (
      await fetch(`${hearth.url}/api/status`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } })
    ).json()) as Status;
    const shown = [...status.jobs.running, ...status.jobs.finished];
    const origins = shown.map((job) => job.origin);
    // Every job that started did so on an instance Hearth knows: each has an origin.
    expect(
      origins.every((origin) => origin === "warm" || origin === "substituted" || origin === "cold"),
    ).toBe(true);
    expect(new Set(origins)).toEqual(new Set(["warm", "substituted", "cold"]));
    // The control plane's inference agrees with the simulated stores: each finished job ran for the
    // duration the demo gave its store's origin (warm, cold, or substituted: min(cold, warm + 60 s)).
    const described = new Map(jobs.map((demo) => [demo.job.id, demo]));
    let checked = 0;
    for (const job of status.jobs.finished) {
      const demo = described.get(job.id);
      if (!demo || job.runSeconds === null) continue;
      checked++;
      const expected =
        job.origin === "warm"
          ? demo.warmSeconds
          : job.origin === "substituted"
            ? Math.min(demo.coldSeconds, demo.warmSeconds + 60)
            : demo.coldSeconds;
      expect(Math.abs(job.runSeconds - expected), `job ${job.id}, ${job.origin}`).toBeLessThanOrEqual(1);
    }
    expect(checked).toBeGreaterThan(0);
    // Per pool, the counts cover every job that started (the lists show only the latest), and no other.
    let started = 0;
    for (const pool of status.pools) {
      const own = shown.filter((job) => job.pool === pool.name);
      for (const origin of ["warm", "substituted", "cold"] as const) {
        expect(pool.stores?.[origin]).toBeGreaterThanOrEqual(
          own.filter((job) => job.origin === origin).length,
        );
        started += pool.stores?.[origin] ?? 0;
      }
    }
    expect(started).toBe(jobs.length - status.jobs.queuedCount);

    const { page, errors } = await openPage(browser, { colorScheme: "light" });
    await page.goto(`${hearth.url}/`);
    await page.getByTestId("token-input").fill(STATUS_TOKEN);
    await page.getByRole("button", { name: "Show the status" }).click();
    const x86 = page.locator('[data-testid="pool-card"][data-pool="x86_64"]');
    await x86.getByTestId("pool-stores").waitFor();
    const stores = status.pools[0]?.stores;
    if (!stores) throw new Error("the pool has no store figures");
    expect(await x86.getByTestId("pool-warm-hit-rate").textContent()).toBe(
      `${Math.round((stores.warm / (stores.warm + stores.substituted + stores.cold)) * 100)}%`,
    );
    for (const origin of ["warm", "substituted", "cold"] as const) {
      expect(await x86.getByTestId(`pool-origin-${origin}`).textContent()).toBe(
        `${stores[origin]} ${origin}`,
      );
    }
    // Each finished job's row says where its store came from, as the API does.
    for (const job of status.jobs.finished) {
      const row = page.getByTestId("finished-table").locator(`[data-job="${job.source}#${job.id}"]`);
      expect(await row.getByTestId("job-origin").textContent()).toBe(job.origin);
    }
    expect(errors).toEqual([]);
    await page.context().close();
  }, 180_000);
});
