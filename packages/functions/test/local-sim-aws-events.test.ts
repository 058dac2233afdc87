import { randomUUID } from "node:crypto";
import { interruptionEvent } from "@hearth/core/interruptions";
import { githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { describeJobs, githubJob, pass, secrets, send, startTestHearth } from "./support/local";

/**
 * `POST /sim/aws/events`: local mode takes EC2's spot events exactly as EventBridge delivers them,
 * and the simulated fleet sends the same events when it interrupts an instance.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/sim/aws/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
const warning = (instanceId: string) =>
  interruptionEvent({ kind: "warning", instanceId, time: new Date().toISOString(), id: randomUUID() });
const errorOf = async (response: Response) =>
  ((await response.json()) as { error: { code: string; message: string } }).error;

describe("POST /sim/aws/events", () => {
  it("starts HandleInterruption per event, one or a list, and a repeated event starts nothing", async () => {
    ({ hearth } = await startTestHearth({ interruptionWaitMs: 5 }));
    const id = "i-0000000000000beef";
    const first = await post(hearth.url, JSON.stringify(warning(id)));
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({
      status: "accepted",
      events: [{ instanceId: id, kind: "warning", outcome: "started" }],
    });
    const rebalance = interruptionEvent({
      kind: "rebalance",
      instanceId: id,
      time: new Date().toISOString(),
      id: "r",
    });
    const list = await post(hearth.url, JSON.stringify([warning(id), rebalance]));
    expect(list.status).toBe(202);
    expect(((await list.json()) as { events: unknown[] }).events).toEqual([
      { instanceId: id, kind: "warning", outcome: "already-started" },
      { instanceId: id, kind: "rebalance", outcome: "started" },
    ]);
    await hearth.handleInterruption.idle();
    // Not one of the fleet's instances: journaled once, nothing else.
    const entries = (await hearth.journal.latest(10)).filter((e) => e.kind === "interruption");
    expect(entries.map((e) => e.reason)).toEqual([`ignored a spot warning for ${id}: not a Hearth instance`]);
  });

  it("refuses what is not an EC2 spot event, naming the problem, and starts nothing", async () => {
    ({ hearth } = await startTestHearth({ interruptionWaitMs: 5 }));
    const id = "i-0000000000000beef";
    const cases: Array<[string, RegExp]> = [
      ["not json", /not UTF-8 JSON/],
      [
        JSON.stringify({ ...warning(id), "detail-type": "EC2 Instance State-change Notification" }),
        /is not one Hearth handles/,
      ],
      [JSON.stringify({ ...warning(id), source: "aws.s3" }), /source/],
      [
        JSON.stringify({
          ...warning(id),
          detail: { "instance-id": "../../etc", "instance-action": "terminate" },
        }),
        /not an EC2 instance id/,
      ],
      [JSON.stringify([warning(id), { ...warning(id), time: "soon" }]), /event 1 at time/],
      [JSON.stringify([]), /no event/],
      [JSON.stringify(Array.from({ length: 101 }, () => warning(id))), /at most 100 events/],
    ];
    for (const [body, message] of cases) {
      const response = await post(hearth.url, body);
      expect(response.status, body.slice(0, 80)).toBe(400);
      expect((await errorOf(response)).message).toMatch(message);
    }
    const invalid = await post(hearth.url, new Uint8Array([0xff, 0xfe]) as never);
    expect(invalid.status).toBe(400);
    const huge = await post(hearth.url, `${JSON.stringify(warning(id))}${" ".repeat(2 * 1024 * 1024)}`);
    expect(huge.status).toBe(413);
    expect(hearth.handleInterruption.executions).toEqual([]);
  });

  it("asks for the status token when one is set", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "s3cret", interruptionWaitMs: 5 }));
    const body = JSON.stringify(warning("i-0000000000000beef"));
    expect((await post(hearth.url, body)).status).toBe(401);
    expect((await post(hearth.url, body, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post(hearth.url, body, { authorization: "Bearer s3cret" })).status).toBe(202);
    expect(hearth.handleInterruption.executions).toEqual(["i-0000000000000beef-warning"]);
  });
});

describe("the simulated fleet's own spot events", () => {
  it("an interruption sends the warning (and a rebalance when asked): the instance is drained and detached, and replaced once", async () => {
    const started = await startTestHearth({ initialWarmPool: 0, interruptionWaitMs: 5 });
    hearth = started.hearth;
    const { clock } = started;
    const fleet = hearth.simulation?.fleet;
    if (!fleet) throw new Error("expected the simulated fleet");
    const job = githubJob("77", "1");
    await describeJobs(hearth, [job], 3600);
    const request = githubDelivery(
      workflowJobPayload(job, "queued", { createdAt: new Date(clock.now()).toISOString() }),
      secrets,
    );
    expect((await send(hearth, request)).status).toBe(202);
    await hearth.idle();
    await pass(hearth, clock, 90);
    const spot = fleet.all().find((i) => i.market === "spot" && i.lifecycle === "in-service");
    if (!spot) throw new Error("expected a spot instance in service");

    await fleet.interrupt(spot.id, "terminate", { rebalance: true });
    expect(hearth.handleInterruption.executions.sort()).toEqual([
      `${spot.id}-rebalance`,
      `${spot.id}-warning`,
    ]);
    await pass(hearth, clock, 10);
    expect(fleet.callLog.filter((c) => c.startsWith("DetachInstances"))).toHaveLength(1);
    expect(await fleet.lookup(spot.id)).toBeUndefined();
    expect((await hearth.registry.get(spot.id))?.interruption?.action).toBe("terminate");
    const burst = fleet.all().filter((i) => i.group === "burst" && !i.detached);
    expect(burst.length).toBeGreaterThanOrEqual(1);
    // The replacement avoided the interrupted instance's zone.
    expect(burst.every((i) => i.az !== spot.az)).toBe(true);

    await pass(hearth, clock, 130);
    await hearth.handleInterruption.idle();
    expect(fleet.get(spot.id)).toBeUndefined();
    expect(await hearth.registry.get(spot.id)).toBeUndefined();
  });
});
