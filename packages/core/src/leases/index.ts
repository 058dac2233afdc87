import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, type Store } from "../table";

/**
 * Leases: at most one holder of a name at a time, for a bounded time. ScaleFleet holds
 * `scale#<pool>` so that one execution runs per pool, however many webhooks ask for one.
 */
export interface Leases {
  /** Takes the lease if it is free or expired; true when `holder` now has it. */
  acquire(name: string, holder: string, seconds: number): Promise<boolean>;
  /**
   * Extends a lease its holder still has; false if it was lost. `waitingUntil` (epoch ms) says the
   * holder will do nothing until then, so that a newcomer may take the lease over (`supersede`); a
   * renewal without it withdraws that.
   */
  renew(name: string, holder: string, seconds: number, waitingUntil?: number): Promise<boolean>;
  /**
   * Takes the lease from a holder that said it waits for more than `marginMs` from now, so it is
   * doing nothing now (or, as `acquire` does, a lease freed or expired meanwhile); true when
   * `holder` now has it. The holder finds it lost at its next
   * renewal. A holder's renewal and a takeover are both conditional writes of the one item, so one of
   * them fails: a holder that renewed (it stopped waiting) keeps the lease.
   */
  supersede(name: string, holder: string, seconds: number, marginMs: number): Promise<boolean>;
  release(name: string, holder: string): Promise<void>;
  /** Whether the lease's holder said it waits for more than `marginMs` from now (see `renew`). */
  waiting(name: string, marginMs: number): Promise<boolean>;
  /** Who holds the lease and until when (epoch ms), if anyone does, and until when it said it waits. */
  get(name: string): Promise<{ holder: string; until: number; waitingUntil?: number } | undefined>;
  /**
   * Frees the lease whoever holds it. Only for a host that knows every holder is gone: local mode,
   * which owns its data directory alone, at start-up.
   */
  clear(name: string): Promise<void>;
}

const key = (name: string) => ({ pk: `LEASE#${name}`, sk: "LEASE" });

export function createLeases(store: Store): Leases {
  const { client, tableName, now } = store;

  async function put(
    name: string,
    holder: string,
    seconds: number,
    condition: string,
    options: { waitingUntil?: number; marginMs?: number } = {},
  ) {
    const at = now();
    try {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            ...key(name),
            kind: "lease",
            holder,
            leaseUntil: at.getTime() + seconds * 1000,
            ...(options.waitingUntil === undefined ? {} : { waitingUntil: options.waitingUntil }),
            // Only for cleanup; `leaseUntil` decides.
            expiresAt: epochSeconds(at) + seconds + 86_400,
          },
          ConditionExpression: condition,
          ExpressionAttributeValues: {
            ":now": at.getTime(),
            ":holder": holder,
            ...(options.marginMs === undefined ? {} : { ":notBefore": at.getTime() + options.marginMs }),
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  return {
    acquire: (name, holder, seconds) =>
      put(name, holder, seconds, "attribute_not_exists(pk) OR leaseUntil < :now OR holder = :holder"),
    renew: (name, holder, seconds, waitingUntil) =>
      put(name, holder, seconds, "holder = :holder AND leaseUntil >= :now", { waitingUntil }),
    supersede: (name, holder, seconds, marginMs) =>
      put(
        name,
        holder,
        seconds,
        "attribute_not_exists(pk) OR leaseUntil < :now OR (waitingUntil > :notBefore AND holder <> :holder)",
        {
          marginMs,
        },
      ),
    async release(name, holder) {
      try {
        await client.send(
          new DeleteCommand({
            TableName: tableName,
            Key: key(name),
            ConditionExpression: "holder = :holder",
            ExpressionAttributeValues: { ":holder": holder },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    },
    async waiting(name, marginMs) {
      const lease = await this.get(name);
      return lease?.waitingUntil !== undefined && lease.waitingUntil > now().getTime() + marginMs;
    },
    async get(name) {
      const { Item } = await client.send(
        new GetCommand({ TableName: tableName, Key: key(name), ConsistentRead: true }),
      );
      if (!Item || Number(Item.leaseUntil) < now().getTime()) return undefined;
      return {
        holder: String(Item.holder),
        until: Number(Item.leaseUntil),
        ...(Item.waitingUntil === undefined ? {} : { waitingUntil: Number(Item.waitingUntil) }),
      };
    },
    async clear(name) {
      await client.send(new DeleteCommand({ TableName: tableName, Key: key(name) }));
    },
  };
}
