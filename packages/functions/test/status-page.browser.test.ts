import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import { parseTrace } from "@hearth/core/simulation/trace";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, openPage } from "../../web/test/support/chromium";
import { demoJobs, replay } from "../src/demo";
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

beforeAll(async () => {
  // What `npm start` does first: build the page if it is missing or stale.
  execFileSync("node", [resolve(repo, "scripts/ensure-web.mjs")], { cwd: repo, stdio: "inherit" });
  // Fleet time starts now, so that the page (which reads real time) sees fresh data.
  clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  ({ hearth } = await startTestHearth({ clock, statusToken: STATUS_TOKEN, initialWarmPool: 3 }));
  // The demo's bundled trace, its first 40 jobs, sent at once.
  const trace = parseTrace(readFileSync(resolve(repo, "packages/functions/demo/sample-trace.csv"), "utf8"));
  const jobs = demoJobs(trace.jobs.slice(0, 40), { speed: 60, firstId: 5_000_000 });
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
});
