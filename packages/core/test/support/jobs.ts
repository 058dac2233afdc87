import type { JobEvent } from "../../src/jobs";

/** A job event with plausible defaults; tests override what they are about. */
export function jobEvent(overrides: Partial<JobEvent> = {}): JobEvent {
  return {
    source: "github",
    id: "1001",
    project: "acme/app",
    projectId: null,
    pipelineId: "77",
    name: "ci / build",
    attempt: 1,
    labels: ["nix", "x86_64-linux"],
    labelsKnown: true,
    status: "queued",
    conclusion: null,
    failureReason: null,
    queuedAt: "2026-01-01T10:00:00.000Z",
    startedAt: null,
    finishedAt: null,
    runner: null,
    instanceId: null,
    url: null,
    ...overrides,
  };
}

/** The events of one job's life, in the order the forge emits them. */
export function lifecycle(id = "1001", overrides: Partial<JobEvent> = {}): JobEvent[] {
  const base = { id, ...overrides };
  return [
    jobEvent({ ...base, status: "queued" }),
    jobEvent({
      ...base,
      status: "running",
      startedAt: "2026-01-01T10:00:20.000Z",
      runner: { id: "7", name: "i-0123456789abcdef0-1" },
      instanceId: "i-0123456789abcdef0",
    }),
    jobEvent({
      ...base,
      status: "completed",
      conclusion: "success",
      startedAt: "2026-01-01T10:00:20.000Z",
      finishedAt: "2026-01-01T10:05:00.000Z",
      runner: { id: "7", name: "i-0123456789abcdef0-1" },
      instanceId: "i-0123456789abcdef0",
    }),
  ];
}
