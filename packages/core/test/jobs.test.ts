import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyEvent, instanceFromRunnerName, type Job, mergeJobs, normalizeLabels } from "../src/jobs";
import { jobEvent, lifecycle } from "./support/jobs";

const fold = (events: readonly Job[]) =>
  events.reduce<Job | undefined>((job, event) => applyEvent(job, event), undefined);

/** Random events about one job: any status, and fields that may or may not be known. */
const anyEvent = fc
  .record({
    status: fc.constantFrom("waiting", "queued", "running", "completed", "cancelled" as const),
    conclusion: fc.option(fc.constantFrom("success", "failure", "cancelled", "skipped"), { nil: null }),
    queuedAt: fc.option(fc.constantFrom("2026-01-01T10:00:00.000Z", "2026-01-01T10:00:03.000Z"), {
      nil: null,
    }),
    startedAt: fc.option(fc.constantFrom("2026-01-01T10:00:20.000Z", "2026-01-01T10:00:21.000Z"), {
      nil: null,
    }),
    finishedAt: fc.option(fc.constantFrom("2026-01-01T10:05:00.000Z"), { nil: null }),
    instanceId: fc.option(fc.constantFrom("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb"), { nil: null }),
    labelsKnown: fc.boolean(),
    labels: fc.subarray(["nix", "x86_64-linux", "big"]),
    attempt: fc.integer({ min: 0, max: 3 }),
  })
  .map((fields) =>
    jobEvent({ ...fields, runner: fields.instanceId ? { id: "1", name: `${fields.instanceId}-1` } : null }),
  );

describe("applying job events", () => {
  it("reaches the same job whatever the order of its events", () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { minLength: 1, maxLength: 8 }), fc.integer(), (events, seed) => {
        const shuffled = fc.sample(fc.shuffledSubarray(events, { minLength: events.length }), {
          numRuns: 1,
          seed,
        })[0];
        expect(fold(shuffled ?? events)).toEqual(fold(events));
      }),
    );
  });

  it("is idempotent: applying events again changes nothing", () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { minLength: 1, maxLength: 6 }), (events) => {
        const once = fold(events);
        expect(fold([...events, ...events])).toEqual(once);
        expect(once && mergeJobs(once, once)).toEqual(once);
      }),
    );
  });

  it("never moves a job back to queued once it ran or finished", () => {
    const [queued, running, completed] = lifecycle();
    const job = fold([running as Job, completed as Job, queued as Job, queued as Job]);
    expect(job).toMatchObject({
      status: "completed",
      conclusion: "success",
      instanceId: "i-0123456789abcdef0",
    });
  });

  it("only fills timestamps in, keeping the earliest", () => {
    const first = jobEvent({ queuedAt: "2026-01-01T10:00:03.000Z" });
    const replayed = jobEvent({ queuedAt: "2026-01-01T10:00:00.000Z" });
    const unknown = jobEvent({ queuedAt: null });
    expect(fold([first, replayed, unknown])?.queuedAt).toBe("2026-01-01T10:00:00.000Z");
    expect(fold([unknown])?.queuedAt).toBeNull();
  });

  it("keeps known labels over unknown ones", () => {
    const known = jobEvent({ source: "gitlab", labels: ["nix"], labelsKnown: true });
    const unknown = jobEvent({ source: "gitlab", labels: [], labelsKnown: false });
    expect(fold([unknown, known])).toMatchObject({ labels: ["nix"], labelsKnown: true });
    expect(fold([known, unknown])).toMatchObject({ labels: ["nix"], labelsKnown: true });
  });

  it("drops the conclusion of a job that is not finished", () => {
    expect(fold([jobEvent({ status: "running", conclusion: "success" })])?.conclusion).toBeNull();
  });

  it("refuses to merge two different jobs", () => {
    expect(() => mergeJobs(jobEvent({ id: "1" }), jobEvent({ id: "2" }))).toThrow(/cannot merge/);
  });
});

describe("labels and runners", () => {
  it("normalizes labels: trimmed, lower-case, unique, sorted", () => {
    expect(normalizeLabels([" Nix", "x86_64-linux", "nix", ""])).toEqual(["nix", "x86_64-linux"]);
  });

  it("maps a runner named after an instance to the instance", () => {
    expect(instanceFromRunnerName("i-0123456789abcdef0-2")).toBe("i-0123456789abcdef0");
    expect(instanceFromRunnerName("i-0123abcd")).toBe("i-0123abcd");
    // The names runnerIdentity gives the slots' runners.
    expect(instanceFromRunnerName("hearth-i-0123456789abcdef0-1")).toBe("i-0123456789abcdef0");
    expect(instanceFromRunnerName("hearth-GitHub Actions 5")).toBeNull();
    expect(instanceFromRunnerName("GitHub Actions 5")).toBeNull();
    expect(instanceFromRunnerName(null)).toBeNull();
  });
});
