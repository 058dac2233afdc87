import { isUtf8 } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { Webhooks } from "@octokit/webhooks";
import * as z from "zod";
import type { GitLabJobs } from "../gitlab-api";
import type { Job } from "../jobs";
import type { Ledger, RecordOutcome } from "../ledger";
import {
  completedRunFromWorkflowRun,
  jobEventFromWorkflowJob,
  type WorkflowRunCompleted,
} from "../sources/github";
import { jobEventFromJobHook, verifyGitLabSignature, verifyGitLabToken } from "../sources/gitlab";

/**
 * Webhook ingestion, independent of HTTP: verify a delivery, understand it, record it once.
 * The HTTP layer reads the body (with its size limit) and maps results onto status codes.
 */

export interface WebhookDelivery {
  /** Header lookup, case-insensitive. */
  header(name: string): string | undefined;
  /** The raw bytes, exactly as received: signatures cover them. */
  body: Uint8Array;
  receivedAt: Date;
}

export type RejectionCode = "unauthorized" | "malformed" | "invalid_payload" | "not_configured";

export type IngestResult =
  | { kind: "rejected"; code: RejectionCode; message: string }
  | { kind: "ignored"; reason: string }
  | { kind: "pong" }
  /** A GitHub `workflow_run` `completed`: whether a re-run awaits it is for `retries` to say. */
  | { kind: "run-completed"; run: WorkflowRunCompleted }
  | { kind: "recorded"; outcome: RecordOutcome; job: Job | undefined };

const reject = (code: RejectionCode, message: string): IngestResult => ({ kind: "rejected", code, message });

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Why the body is not UTF-8 text, or undefined when it is. Both forges send UTF-8 JSON and sign that
 * text, and both verifiers (Octokit's and the Standard Webhooks reference) check text: a body that is
 * not UTF-8 is refused as malformed before its signature is checked, rather than as a signature that
 * "does not match" when it may well have been right.
 */
function notUtf8(body: Uint8Array): string | undefined {
  if (isUtf8(body)) return undefined;
  // The first replacement character that the body did not itself contain marks the first bad byte.
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let offset = 0;
  for (const char of bytes.toString("utf8")) {
    const genuine = bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd;
    if (char === "\uFFFD" && !genuine) break;
    offset += Buffer.byteLength(char);
  }
  return `body is not valid UTF-8 (byte ${offset}); webhooks carry UTF-8 JSON`;
}

function parseJson(
  bytes: Uint8Array,
  form: boolean,
): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    let text = decoder.decode(bytes);
    if (form) {
      // GitHub's "application/x-www-form-urlencoded" content type puts the JSON in `payload`.
      const payload = new URLSearchParams(text).get("payload");
      if (payload === null) return { ok: false, message: "form body has no payload field" };
      text = payload;
    }
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, message: "body is not valid JSON" };
  }
}

function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  const path = issue?.path.length ? issue.path.join(".") : "(root)";
  return `payload does not match the schema at ${path}: ${issue?.message ?? "invalid"}`;
}

/** The id that makes a delivery idempotent; a hash of the body when the forge sent none. */
function deliveryIdOf(delivery: WebhookDelivery, headers: readonly string[]): string {
  for (const name of headers) {
    const value = delivery.header(name)?.trim();
    if (value && value.length <= 200) return value;
  }
  return `sha256:${createHash("sha256").update(delivery.body).digest("hex")}`;
}

export interface GitHubIngestOptions {
  ledger: Ledger;
  /** The webhook secret; undefined means GitHub webhooks are not configured. */
  secret: string | undefined;
}

const SIGNATURE_MISMATCH = "X-Hub-Signature-256 does not match the body";

export function createGitHubIngest(options: GitHubIngestOptions) {
  const webhooks = options.secret ? new Webhooks({ secret: options.secret }) : undefined;
  return async function ingestGitHub(delivery: WebhookDelivery): Promise<IngestResult> {
    if (!webhooks) return reject("not_configured", "GitHub webhooks are not configured (no webhook secret)");
    const signature = delivery.header("x-hub-signature-256");
    if (!signature) return reject("unauthorized", "X-Hub-Signature-256 header is missing");
    // Nothing to record, but only a sender that holds the secret learns so (the signature library
    // refuses an empty payload outright, so its signature is checked here).
    if (delivery.body.byteLength === 0) {
      const expected = Buffer.from(
        `sha256=${createHmac("sha256", options.secret as string)
          .update("")
          .digest("hex")}`,
      );
      const given = Buffer.from(signature);
      return given.length === expected.length && timingSafeEqual(given, expected)
        ? reject("malformed", "the body is empty")
        : reject("unauthorized", SIGNATURE_MISMATCH);
    }
    const malformed = notUtf8(delivery.body);
    if (malformed) return reject("malformed", malformed);
    // Valid UTF-8 decodes and re-encodes to the same bytes, which the signature covers.
    const body = Buffer.from(delivery.body.buffer, delivery.body.byteOffset, delivery.body.byteLength);
    let valid = false;
    try {
      valid = await webhooks.verify(body.toString("utf8"), signature);
    } catch {
      valid = false;
    }
    if (!valid) return reject("unauthorized", SIGNATURE_MISMATCH);
    const event = delivery.header("x-github-event");
    if (!event) return reject("malformed", "X-GitHub-Event header is missing");
    if (event === "ping") return { kind: "pong" };
    if (event !== "workflow_job" && event !== "workflow_run")
      return { kind: "ignored", reason: `event ${event.slice(0, 60)} is not handled` };

    const form = (delivery.header("content-type") ?? "")
      .toLowerCase()
      .startsWith("application/x-www-form-urlencoded");
    const parsed = parseJson(delivery.body, form);
    if (!parsed.ok) return reject("malformed", parsed.message);
    if (event === "workflow_run") {
      let run: WorkflowRunCompleted | undefined;
      try {
        run = completedRunFromWorkflowRun(parsed.value);
      } catch (error) {
        if (error instanceof z.ZodError) return reject("invalid_payload", describeZodError(error));
        throw error;
      }
      return run
        ? { kind: "run-completed", run }
        : { kind: "ignored", reason: "workflow_run action is not handled" };
    }
    let jobEvent: ReturnType<typeof jobEventFromWorkflowJob>;
    try {
      jobEvent = jobEventFromWorkflowJob(parsed.value);
    } catch (error) {
      if (error instanceof z.ZodError) return reject("invalid_payload", describeZodError(error));
      throw error;
    }
    if (!jobEvent) return { kind: "ignored", reason: "workflow_job action is not handled" };
    const { outcome, job } = await options.ledger.record(
      jobEvent,
      deliveryIdOf(delivery, ["x-github-delivery"]),
    );
    return { kind: "recorded", outcome, job };
  };
}

export interface GitLabIngestOptions {
  ledger: Ledger;
  /** Compared with `X-Gitlab-Token`. */
  token: string | undefined;
  /** When set, `webhook-signature` must verify (Standard Webhooks, `whsec_…`). */
  signingToken: string | undefined;
}

export function createGitLabIngest(options: GitLabIngestOptions) {
  return async function ingestGitLab(delivery: WebhookDelivery): Promise<IngestResult> {
    const { token, signingToken } = options;
    if (!token && !signingToken) {
      return reject(
        "not_configured",
        "GitLab webhooks are not configured (no webhook token or signing token)",
      );
    }
    if (token && !verifyGitLabToken(delivery.header("x-gitlab-token"), token)) {
      return reject("unauthorized", "X-Gitlab-Token is missing or wrong");
    }
    const malformed = notUtf8(delivery.body);
    if (malformed) return reject("malformed", malformed);
    if (signingToken) {
      const check = verifyGitLabSignature(
        {
          id: delivery.header("webhook-id"),
          timestamp: delivery.header("webhook-timestamp"),
          signature: delivery.header("webhook-signature"),
        },
        delivery.body,
        signingToken,
      );
      if (!check.ok) return reject("unauthorized", check.reason);
    }
    const event = delivery.header("x-gitlab-event");
    if (!event) return reject("malformed", "X-Gitlab-Event header is missing");
    if (event !== "Job Hook")
      return { kind: "ignored", reason: `event ${event.slice(0, 60)} is not handled` };

    const parsed = parseJson(delivery.body, false);
    if (!parsed.ok) return reject("malformed", parsed.message);
    let jobEvent: ReturnType<typeof jobEventFromJobHook>;
    try {
      jobEvent = jobEventFromJobHook(parsed.value, delivery.receivedAt);
    } catch (error) {
      if (error instanceof z.ZodError) return reject("invalid_payload", describeZodError(error));
      throw error;
    }
    if (!jobEvent) return { kind: "ignored", reason: "job status is not handled" };
    const deliveryId = deliveryIdOf(delivery, ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"]);
    const { outcome, job } = await options.ledger.record(jobEvent, deliveryId);
    return { kind: "recorded", outcome, job };
  };
}

/** A queued GitLab job whose tags are still unknown: look them up through the API. */
export const needsTagLookup = (job: Job | undefined): job is Job =>
  job !== undefined && job.source === "gitlab" && !job.labelsKnown && job.status === "queued";

/** Fill in a GitLab job's tags from the API (`afterJobRecorded`, the tick and Observe call it). */
export async function resolveTags(ledger: Ledger, gitlab: GitLabJobs, job: Job): Promise<Job | undefined> {
  if (!job.projectId) return undefined;
  const tags = await gitlab.tagList(job.projectId, job.id);
  return ledger.setLabels(job, tags);
}
