import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { gitlabJobHookExample, type WorkflowJobExample, workflowJobExamples } from "../../core/test/fixtures";
import { createHarness, githubRequest, gitlabRequest, stopEmbeddedDynamo } from "./support/harness";

afterAll(stopEmbeddedDynamo);

const queuedExample = workflowJobExamples[5] as WorkflowJobExample;

/** One GitHub job's deliveries, each with its own delivery id, built from GitHub's queued example. */
function githubLife() {
  const job = queuedExample.workflow_job;
  const at = (action: string, fields: Record<string, unknown>) => ({
    delivery: `gh-${action}`,
    event: { ...queuedExample, action, workflow_job: { ...job, ...fields } },
  });
  return [
    at("queued", { status: "queued", runner_name: null, runner_id: null }),
    at("in_progress", { status: "in_progress", runner_name: "i-0123456789abcdef0-1", runner_id: 9 }),
    at("completed", {
      status: "completed",
      conclusion: "success",
      runner_name: "i-0123456789abcdef0-1",
      runner_id: 9,
      completed_at: "2021-09-13T02:30:00Z",
    }),
  ];
}

const gitlabSample = gitlabJobHookExample();

function gitlabLife() {
  const at = (status: string, fields: Record<string, unknown> = {}) => ({
    delivery: `gl-${status}`,
    event: { ...gitlabSample, build_status: status, build_queued_duration: 3, ...fields },
  });
  const started = { build_started_at: "2026-01-01T10:00:20.000Z" };
  return [
    at("created", { build_queued_duration: null }),
    at("pending", { build_queued_duration: 0, build_created_at: "2026-01-01T10:00:00.000Z" }),
    at("running", started),
    at("success", { ...started, build_finished_at: "2026-01-01T10:04:00.000Z" }),
  ];
}

/** Deliveries in any order, some of them more than once (forges retry). */
const orders = (size: number) =>
  fc
    .array(fc.nat({ max: size - 1 }), { minLength: size, maxLength: size * 2 })
    .chain((extra) =>
      fc.shuffledSubarray([...Array(size).keys(), ...extra], { minLength: size + extra.length }),
    )
    .filter((order) => new Set(order).size === size);

describe("deliveries in any order, with duplicates", () => {
  it("give the same GitHub job as in-order delivery", async () => {
    const life = githubLife();
    const reference = await createHarness();
    for (const step of life)
      await reference.app.request(await githubRequest("workflow_job", step.event, step));
    const expected = await reference.ledger.get({ source: "github", id: "289782451" });
    expect(expected).toMatchObject({ status: "completed", instanceId: "i-0123456789abcdef0" });

    await fc.assert(
      fc.asyncProperty(orders(life.length), async (order) => {
        const { app, ledger } = await createHarness();
        for (const i of order) {
          const step = life[i];
          if (step)
            expect((await app.request(await githubRequest("workflow_job", step.event, step))).ok).toBe(true);
        }
        expect(await ledger.get({ source: "github", id: "289782451" })).toEqual(expected);
      }),
      { numRuns: 15 },
    );
  });

  it("give the same GitLab job as in-order delivery", async () => {
    const life = gitlabLife();
    const now = () => new Date("2026-01-01T10:00:01.000Z");
    const reference = await createHarness({ now });
    for (const step of life) {
      await reference.app.request(gitlabRequest(step.event, { idempotencyKey: step.delivery }));
    }
    const expected = await reference.ledger.get({ source: "gitlab", id: "1977" });
    expect(expected).toMatchObject({ status: "completed", queuedAt: "2026-01-01T10:00:01.000Z" });

    await fc.assert(
      fc.asyncProperty(orders(life.length), async (order) => {
        const { app, ledger } = await createHarness({ now });
        for (const i of order) {
          const step = life[i];
          if (step) await app.request(gitlabRequest(step.event, { idempotencyKey: step.delivery }));
        }
        expect(await ledger.get({ source: "gitlab", id: "1977" })).toEqual(expected);
      }),
      { numRuns: 15 },
    );
  });
});
