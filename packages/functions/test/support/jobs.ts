import type { Job } from "@hearth/core/jobs";

/** A queued job event, as a webhook would record it. */
export function queuedJob(fields: Partial<Job> = {}): Job {
  return {
    source: "github",
    id: String(Math.floor(Math.random() * 1e9)),
    project: "acme/app",
    projectId: null,
    pipelineId: "1",
    name: "build",
    attempt: 1,
    labels: ["nix", "x86_64-linux"],
    labelsKnown: true,
    status: "queued",
    conclusion: null,
    failureReason: null,
    queuedAt: new Date(Date.now() - 120_000).toISOString(),
    startedAt: null,
    finishedAt: null,
    runner: null,
    instanceId: null,
    url: null,
    ...fields,
  };
}
