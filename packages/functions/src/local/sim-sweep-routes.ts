import { gitlabSystemId } from "@hearth/core/gitlab-api";
import type { PoolConfig } from "@hearth/core/pools";
import {
  listingFaultKinds,
  MAX_FAULT_CALLS,
  type SimulatedListingFaults,
} from "@hearth/core/simulation/forge/faults";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import type { Context, Hono } from "hono";
import * as z from "zod";
import { errorResponse, readJsonBody } from "../http";
import type { SimulatedRunners } from "./sim-runners";

/**
 * Local mode's controls for the sweep (all behind the `/sim` status-token check of sim-routes.ts):
 *
 * - `POST /sim/forge/runners` registers a runner in a simulated forge that no instance runs: a GitHub
 *   runner in a repository or organization (offline, never started), or a manager of a pool's GitLab
 *   runner for an instance id. What a register that half-failed leaves behind: a ghost.
 * - `GET`/`PUT /sim/forge/faults`: the next N runner listings of a forge fail (500, 429) or come back
 *   truncated; `null` clears a forge's fault.
 * - `PUT /sim/fleet/instances/:id/agent`: an instance's agent stopped (or started again), or its
 *   heartbeats slowed to one per N seconds (`null`: back to normal).
 * - `POST /sim/sweep`: a sweep now; answers its survey and outcomes once the run has finished.
 *
 * Every body is checked whole before anything changes: a refusal is a 400 naming the problem.
 */

const account = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const repository = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}\/[A-Za-z0-9._-]{1,100}$/;
const instanceId = z.string().regex(/^i-[0-9a-z]{1,32}$/, "instanceId is an instance id (i-…)");

const ghostRunnerBody = z.discriminatedUnion("forge", [
  z.strictObject({
    forge: z.literal("github"),
    scope: z.union([
      z.strictObject({
        organization: z.string().regex(account, "organization is not a GitHub account name"),
      }),
      z.strictObject({ repository: z.string().regex(repository, "repository is owner/name") }),
    ]),
    name: z.string().min(1).max(64),
    labels: z.array(z.string().min(1).max(256)).min(1).max(100).optional(),
  }),
  z.strictObject({ forge: z.literal("gitlab"), pool: z.string().min(1).max(100), instanceId }),
]);

const fault = z
  .strictObject({
    kind: z.enum(listingFaultKinds),
    calls: z.number().int().min(1).max(MAX_FAULT_CALLS),
  })
  .nullable();
const faultsBody = z
  .strictObject({ github: fault.optional(), gitlab: fault.optional() })
  .refine((body) => body.github !== undefined || body.gitlab !== undefined, "name github or gitlab");

const agentBody = z
  .strictObject({
    stopped: z.boolean().optional(),
    heartbeatEverySeconds: z.number().int().min(1).max(86_400).nullable().optional(),
  })
  .refine(
    (body) => body.stopped !== undefined || body.heartbeatEverySeconds !== undefined,
    "name stopped or heartbeatEverySeconds",
  );

const issueText = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
};

export interface SimSweepRouteOptions {
  forge: SimulatedForgeRunners;
  faults: SimulatedListingFaults;
  runners: SimulatedRunners;
  pools: readonly PoolConfig[];
  /** Called after a change to the forges' runners, before the answer (written to `--data`). */
  written?: () => void;
  /** Runs a sweep and resolves with what it found and did; absent where no sweep runs. */
  sweep?: () => Promise<unknown>;
}

async function parsed<T>(c: Context, schema: z.ZodType<T>): Promise<T | Response> {
  const read = await readJsonBody(c.req.raw);
  if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
  const result = schema.safeParse(read.body);
  if (!result.success) return errorResponse(c, 400, "invalid_payload", issueText(result.error));
  return result.data;
}

export function simSweepRoutes(app: Hono, options: SimSweepRouteOptions): void {
  const { forge, faults } = options;

  app.post("/sim/forge/runners", async (c) => {
    const body = await parsed(c, ghostRunnerBody);
    if (body instanceof Response) return body;
    if (body.forge === "github") {
      const made = forge.github.generateJitConfig(body.scope, {
        name: body.name,
        labels: body.labels ?? ["self-hosted", "linux", "x64"],
        runner_group_id: 1,
      });
      if (!made.ok) {
        return errorResponse(c, 400, "refused", [made.message, ...(made.errors ?? [])].join(": "));
      }
      options.written?.();
      // The runner only: its config is never handed out here, so nothing can start it.
      const { id, name, status, busy } = made.value.runner;
      return c.json({ forge: "github", scope: body.scope, runner: { id, name, status, busy } }, 201);
    }
    if (!options.pools.some((pool) => pool.name === body.pool)) {
      return errorResponse(c, 400, "invalid_payload", `pool: no pool is named ${body.pool}`);
    }
    const token = forge.gitlab.tokenOf(body.pool);
    if (!token) return errorResponse(c, 400, "refused", `pool ${body.pool} has no GitLab runner`);
    const systemId = gitlabSystemId(body.instanceId);
    const verified = forge.gitlab.verify(token, systemId);
    if (!verified.ok) return errorResponse(c, 400, "refused", verified.message);
    options.written?.();
    return c.json({ forge: "gitlab", pool: body.pool, runnerId: verified.value.id, systemId }, 201);
  });

  app.get("/sim/forge/faults", (c) => c.json(faults.current()));
  app.put("/sim/forge/faults", async (c) => {
    const body = await parsed(c, faultsBody);
    if (body instanceof Response) return body;
    if (body.github !== undefined) faults.set("github", body.github);
    if (body.gitlab !== undefined) faults.set("gitlab", body.gitlab);
    return c.json(faults.current());
  });

  app.put("/sim/fleet/instances/:id/agent", async (c) => {
    const id = instanceId.safeParse(c.req.param("id"));
    if (!id.success) return errorResponse(c, 400, "invalid_instance", issueText(id.error));
    const body = await parsed(c, agentBody);
    if (body instanceof Response) return body;
    const agent = options.runners.controlAgent(id.data, {
      ...(body.stopped !== undefined ? { stopped: body.stopped } : {}),
      ...(body.heartbeatEverySeconds !== undefined
        ? { heartbeatEverySeconds: body.heartbeatEverySeconds }
        : {}),
    });
    if (!agent) return errorResponse(c, 404, "not_found", `no agent runs on instance ${id.data}`);
    return c.json({ instanceId: id.data, agent });
  });

  app.post("/sim/sweep", async (c) => {
    if (!options.sweep) return errorResponse(c, 404, "not_found", "no sweep runs here");
    try {
      return c.json(await options.sweep());
    } catch (error) {
      // The run failed (its failure is journaled) or local mode is stopping.
      return errorResponse(c, 500, "sweep_failed", error instanceof Error ? error.message : String(error));
    }
  });
}
