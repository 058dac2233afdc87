import { FakeClock } from "@hearth/core/clock";
import { type ForgeJob, gitlabDelivery, jobHookPayload } from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import type { Logger } from "../src/log";
import { describeJobs, secrets, send, startTestHearth } from "./support/local";

/**
 * Local mode without a GitLab API: its simulated GitLab knows the tags of the jobs the demo described
 * and no others. It says once that other jobs' tags cannot be looked up, not once per job.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const job = (id: string, labels: string[] = []): ForgeJob => ({
  source: "gitlab",
  id,
  project: "acme/app",
  projectId: "3",
  pipelineId: "30",
  name: `test-${id}`,
  labels,
});

describe("GitLab tags in local mode without a GitLab API", () => {
  it("says once that they cannot be looked up, and routes the jobs as untagged", async () => {
    const lines: Array<{ level: string; message: string }> = [];
    const entry = (level: string) => (message: string) => lines.push({ level, message });
    const log: Logger = { info: entry("info"), warn: entry("warn"), error: entry("error") };
    const clock = new FakeClock();
    ({ hearth } = await startTestHearth({ clock, log }));
    // The demo's job has its tags looked up; the others are unknown to the simulated GitLab.
    await describeJobs(hearth, [job("100", ["nix", "aarch64-linux"])], 60);
    for (const id of ["100", "101", "102", "103", "104", "105"]) {
      const request = gitlabDelivery(
        jobHookPayload(job(id), "pending", { createdAt: new Date(clock.now()).toISOString() }),
        secrets,
        new Date(clock.now()),
      );
      expect((await send(hearth, request)).status).toBe(202);
    }
    await hearth.idle();
    await hearth.tick();
    await hearth.idle();

    const warnings = lines.filter((line) => line.level !== "info").map((line) => line.message);
    expect(warnings.filter((message) => /tag/i.test(message))).toEqual([
      expect.stringMatching(/^GitLab jobs' tags cannot be looked up: no GitLab API is configured/),
    ]);
    expect((await hearth.ledger.get({ source: "gitlab", id: "100" }))?.labels).toEqual([
      "aarch64-linux",
      "nix",
    ]);
    const unknown = await hearth.ledger.get({ source: "gitlab", id: "101" });
    expect(unknown?.labelsKnown).toBe(false);
  });
});
