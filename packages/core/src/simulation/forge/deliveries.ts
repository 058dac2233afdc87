import { Random } from "../rules/random";
import type { ForgeRequest } from ".";

/**
 * The simulated forges' webhook deliveries, as GitHub keeps an App's: every delivery is recorded
 * (its guid, event, action, status code, whether it was a redelivery, its request), so that `GET
 * /app/hook/deliveries` lists them, `GET …/deliveries/{id}` shows one with its payload, and `POST
 * …/deliveries/{id}/attempts` sends one again, with the
 * same guid and body, as a redelivery. A loss rate drops that share of deliveries at random (seeded):
 * a dropped delivery never reaches Hearth and is recorded as failed with status code 0, as GitHub
 * records a delivery that got no answer ("timed out"), so that polling finds it.
 */

export interface DeliveryRecord {
  /** GitHub's delivery id: a number, one per attempt. */
  id: number;
  /** `X-GitHub-Delivery`: the same for a delivery and its redeliveries. */
  guid: string;
  source: "github" | "gitlab";
  /** `workflow_job`, `workflow_run`, or GitLab's `Job Hook`. */
  event: string;
  action: string | null;
  /** The answer's status code; 0 when none came (dropped, or no connection). */
  statusCode: number;
  redelivery: boolean;
  deliveredAt: string;
  durationSeconds: number;
  request: ForgeRequest;
}

export type SendDelivery = (request: ForgeRequest) => Promise<{ status: number }>;

/** Deliveries kept at most (GitHub keeps 3 days'); the oldest are forgotten first. */
export const MAX_DELIVERIES = 20_000;

export class SimulatedDeliveries {
  private readonly records: DeliveryRecord[] = [];
  private nextId = 1;
  private rate: number;
  private readonly random: Random;

  constructor(
    private readonly options: {
      send: SendDelivery;
      now: () => number;
      /** The share of deliveries dropped, in [0, 1]; none by default. */
      lossRate?: number;
      seed?: number;
    },
  ) {
    this.rate = checkedLossRate(options.lossRate ?? 0);
    this.random = Random.stream(options.seed ?? 1, "webhook-loss");
  }

  get lossRate(): number {
    return this.rate;
  }

  set lossRate(rate: number) {
    this.rate = checkedLossRate(rate);
  }

  /** Sends a delivery (unless it is dropped) and records it with its outcome. */
  async deliver(request: ForgeRequest, redelivery = false): Promise<DeliveryRecord> {
    const started = this.options.now();
    // Drawn even at rate 0, so that changing the rate does not shift which later deliveries drop.
    const dropped = this.random.next() < this.rate;
    let statusCode = 0;
    if (!dropped) {
      try {
        statusCode = (await this.options.send(request)).status;
      } catch {
        statusCode = 0;
      }
    }
    const record: DeliveryRecord = {
      id: this.nextId++,
      guid: request.headers["x-github-delivery"] ?? request.headers["x-gitlab-event-uuid"] ?? "",
      source: request.path === "/webhooks/github" ? "github" : "gitlab",
      event: request.headers["x-github-event"] ?? request.headers["x-gitlab-event"] ?? "",
      action: actionOf(request.body),
      statusCode,
      redelivery,
      deliveredAt: new Date(started).toISOString(),
      durationSeconds: Math.max(0, (this.options.now() - started) / 1000),
      request,
    };
    this.records.push(record);
    if (this.records.length > MAX_DELIVERIES) this.records.splice(0, this.records.length - MAX_DELIVERIES);
    return record;
  }

  /** One delivery by id, if kept. */
  get(id: number): DeliveryRecord | undefined {
    return this.records.find((record) => record.id === id);
  }

  /** Sends a recorded delivery again, as a redelivery; undefined if no such delivery is kept. */
  redeliver(id: number): Promise<DeliveryRecord> | undefined {
    const record = this.get(id);
    if (!record) return undefined;
    return this.deliver(record.request, true);
  }

  /** A source's deliveries, newest first, after the `cursor` (a delivery id) if given. */
  list(source: "github" | "gitlab", options: { perPage: number; cursor?: number }) {
    const matching: DeliveryRecord[] = [];
    for (let at = this.records.length - 1; at >= 0; at--) {
      const record = this.records[at] as DeliveryRecord;
      if (record.source !== source) continue;
      if (options.cursor !== undefined && record.id >= options.cursor) continue;
      matching.push(record);
      if (matching.length > options.perPage) break;
    }
    const page = matching.slice(0, options.perPage);
    return { page, next: matching.length > options.perPage ? page.at(-1)?.id : undefined };
  }

  /** All kept deliveries, oldest first. */
  all(): readonly DeliveryRecord[] {
    return this.records;
  }
}

/** A loss rate: a number in [0, 1]. Throws a RangeError otherwise. */
export function checkedLossRate(rate: number): number {
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new RangeError(`a webhook loss rate is a number from 0 to 1, not ${String(rate)}`);
  }
  return rate;
}

function actionOf(body: string): string | null {
  try {
    const payload = JSON.parse(body) as { action?: unknown; build_status?: unknown };
    if (typeof payload.action === "string") return payload.action;
    return typeof payload.build_status === "string" ? payload.build_status : null;
  } catch {
    return null;
  }
}

/** A delivery as GitHub's `GET /app/hook/deliveries` lists it (hook-delivery-item). */
export function githubDeliveryItem(record: DeliveryRecord) {
  return {
    id: record.id,
    guid: record.guid,
    delivered_at: record.deliveredAt,
    redelivery: record.redelivery,
    duration: record.durationSeconds,
    status: record.statusCode === 0 ? "timed out" : record.statusCode < 400 ? "OK" : "Invalid HTTP Response",
    status_code: record.statusCode,
    event: record.event,
    action: record.action,
    installation_id: 1,
    repository_id: 1,
    throttled_at: null,
  };
}

/**
 * A delivery as GitHub's `GET /app/hook/deliveries/{id}` shows it (hook-delivery): the item, and the
 * request with its payload. The signature header is left out: the API's caller reads it as the App.
 */
export function githubHookDelivery(record: DeliveryRecord) {
  let payload: unknown = null;
  try {
    payload = JSON.parse(record.request.body);
  } catch {
    payload = null;
  }
  const headers = Object.fromEntries(
    Object.entries(record.request.headers).filter(([name]) => !name.startsWith("x-hub-signature")),
  );
  return {
    ...githubDeliveryItem(record),
    url: `https://hearth.local${record.request.path}`,
    request: { headers, payload },
    response: { headers: null, payload: null },
  };
}
