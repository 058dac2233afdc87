import { PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { conditionalWrite, epochSeconds, type Store } from "../table";

/**
 * What Hearth keeps about the retries it asks for, beside the jobs themselves: one claim per GitLab
 * job (so that concurrent deliveries of its `failed` webhook retry it once), and per GitHub run
 * attempt the run's state and its interrupted jobs (a re-run is of a whole run, once per attempt).
 *
 * | item             | pk                                              | sk             |
 * |------------------|-------------------------------------------------|----------------|
 * | GitLab retry     | `RETRY#gitlab#<job id>`                         | `RETRY`        |
 * | GitHub run       | `RERUN#github#<owner/repo>#<run id>#<attempt>`  | `RUN`          |
 * | its interrupted job | same                                         | `JOB#<job id>` |
 *
 * Every write is a single-item conditional write. A claim (`claimed`) that is older than
 * `STALE_CLAIM_MS` belongs to a call that died (a Lambda stopped mid-call) and may be taken again.
 */

export const STALE_CLAIM_MS = 2 * 60_000;
const KEEP_SECONDS = 7 * 86_400;

export type ClaimState = "claimed" | "done" | "failed";
/** `awaiting`: the run has an interrupted, failed job and waits to complete; `rerunning`: claimed. */
export type RunState = "awaiting" | "rerunning" | "done";

export interface RerunJob {
  jobId: string;
  name: string;
  /** The job's own `retryNumber` (0 for an original job). */
  retryNumber: number;
  pool: string | null;
}

export interface RerunRun {
  state: RunState;
  claimedAt: string | null;
  rerunAt: string | null;
  lastError: string | null;
  /** When the run's `workflow_run` `completed` was first seen, or null. */
  completedAt: string | null;
  jobs: RerunJob[];
}

export interface RetryRecords {
  /** Takes the retry of a GitLab job: true when this caller may call the forge. */
  claimGitLab(jobId: string): Promise<boolean>;
  settleGitLab(jobId: string, outcome: { newJobId: string } | { error: string }): Promise<void>;
  /** Records a GitHub run attempt's interrupted job (the run is then awaiting its re-run). */
  addRerunJob(repository: string, runId: string, attempt: number, job: RerunJob): Promise<void>;
  /** The run attempt's state and its interrupted jobs, or undefined when none was interrupted. */
  run(repository: string, runId: string, attempt: number): Promise<RerunRun | undefined>;
  /**
   * Notes that the run attempt has completed (its `workflow_run` `completed` arrived), if it has a
   * record: a caller whose re-run GitHub refused as not completed then knows to ask again.
   */
  noteRunCompleted(repository: string, runId: string, attempt: number): Promise<void>;
  /** Takes the run's re-run: true when this caller may call the forge. */
  claimRun(repository: string, runId: string, attempt: number): Promise<boolean>;
  settleRun(
    repository: string,
    runId: string,
    attempt: number,
    outcome: "done" | "awaiting",
    error?: string,
  ): Promise<void>;
}

const gitlabKey = (jobId: string) => ({ pk: `RETRY#gitlab#${jobId}`, sk: "RETRY" });
const runPk = (repository: string, runId: string, attempt: number) =>
  `RERUN#github#${repository}#${runId}#${attempt}`;

export function createRetryRecords(store: Store): RetryRecords {
  const { client, tableName, now } = store;
  const expiresAt = () => epochSeconds(now()) + KEEP_SECONDS;
  const staleBefore = () => new Date(now().getTime() - STALE_CLAIM_MS).toISOString();

  return {
    claimGitLab(jobId) {
      return conditionalWrite(() =>
        client.send(
          new PutCommand({
            TableName: tableName,
            Item: {
              ...gitlabKey(jobId),
              kind: "retry",
              state: "claimed",
              claimedAt: now().toISOString(),
              expiresAt: expiresAt(),
            },
            // A failed retry may be tried again at the next event; a done one never.
            ConditionExpression:
              "attribute_not_exists(pk) OR #state = :failed OR (#state = :claimed AND claimedAt < :stale)",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":failed": "failed",
              ":claimed": "claimed",
              ":stale": staleBefore(),
            },
          }),
        ),
      );
    },

    async settleGitLab(jobId, outcome) {
      await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: gitlabKey(jobId),
          UpdateExpression: "SET #state = :state, newJobId = :job, lastError = :error, settledAt = :at",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":state": "newJobId" in outcome ? "done" : "failed",
            ":job": "newJobId" in outcome ? outcome.newJobId : null,
            ":error": "error" in outcome ? outcome.error : null,
            ":at": now().toISOString(),
          },
        }),
      );
    },

    async addRerunJob(repository, runId, attempt, job) {
      const pk = runPk(repository, runId, attempt);
      await conditionalWrite(() =>
        client.send(
          new PutCommand({
            TableName: tableName,
            Item: {
              pk,
              sk: "RUN",
              kind: "rerun",
              state: "awaiting",
              claimedAt: null,
              rerunAt: null,
              lastError: null,
              expiresAt: expiresAt(),
            },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        ),
      );
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: { pk, sk: `JOB#${job.jobId}`, kind: "rerun-job", ...job, expiresAt: expiresAt() },
        }),
      );
    },

    async run(repository, runId, attempt) {
      const page = await client.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": runPk(repository, runId, attempt) },
          ConsistentRead: true,
        }),
      );
      const items = page.Items ?? [];
      const run = items.find((item) => item.sk === "RUN");
      if (!run) return undefined;
      return {
        state: run.state as RunState,
        claimedAt: (run.claimedAt as string | null) ?? null,
        rerunAt: (run.rerunAt as string | null) ?? null,
        lastError: (run.lastError as string | null) ?? null,
        completedAt: (run.completedAt as string | null) ?? null,
        jobs: items
          .filter((item) => String(item.sk).startsWith("JOB#"))
          .map((item) => ({
            jobId: String(item.jobId),
            name: String(item.name),
            retryNumber: Number(item.retryNumber ?? 0),
            pool: (item.pool as string | null) ?? null,
          })),
      };
    },

    async noteRunCompleted(repository, runId, attempt) {
      await conditionalWrite(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: runPk(repository, runId, attempt), sk: "RUN" },
            UpdateExpression: "SET completedAt = if_not_exists(completedAt, :now)",
            ConditionExpression: "attribute_exists(pk)",
            ExpressionAttributeValues: { ":now": now().toISOString() },
          }),
        ),
      );
    },

    claimRun(repository, runId, attempt) {
      return conditionalWrite(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: runPk(repository, runId, attempt), sk: "RUN" },
            UpdateExpression: "SET #state = :rerunning, claimedAt = :now",
            ConditionExpression: "#state = :awaiting OR (#state = :rerunning AND claimedAt < :stale)",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":rerunning": "rerunning",
              ":awaiting": "awaiting",
              ":now": now().toISOString(),
              ":stale": staleBefore(),
            },
          }),
        ),
      );
    },

    async settleRun(repository, runId, attempt, outcome, error) {
      await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: { pk: runPk(repository, runId, attempt), sk: "RUN" },
          UpdateExpression: "SET #state = :state, rerunAt = :rerunAt, lastError = :error",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":state": outcome,
            ":rerunAt": outcome === "done" ? now().toISOString() : null,
            ":error": error ?? null,
          },
        }),
      );
    },
  };
}
