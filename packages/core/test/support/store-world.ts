import { randomUUID } from "node:crypto";
import { createInstanceRegistry, type InstanceRegistry } from "../../src/instances";
import { createLedger, type Ledger } from "../../src/ledger";
import { type EmbeddedDynamo, localDynamoClients } from "../../src/local";
import { ensureTable, type Store } from "../../src/table";

/** Instances the store tests register: two of pool x86_64, one of aarch64, and one nobody registers. */
export const A = "i-0aaaaaaaaaaaaaaa1";
export const B = "i-0bbbbbbbbbbbbbbb2";
export const ARM = "i-0ccccccccccccccc3";
export const STRANGER = "i-0ddddddddddddddd4";

export interface StoreWorld {
  store: Store;
  ledger: Ledger;
  registry: InstanceRegistry;
  tableName: string;
  setClock(iso: string): void;
}

/** A fresh table with A and B (x86_64) and ARM (aarch64) registered, on a settable clock. */
export async function storeWorld(dynamo: EmbeddedDynamo, startAt: string): Promise<StoreWorld> {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `stores-${randomUUID()}`;
  await ensureTable(client, tableName);
  let clock = new Date(startAt);
  const store = { client: documents, tableName, now: () => clock };
  const registry = createInstanceRegistry(store);
  for (const [id, pool] of [
    [A, "x86_64"],
    [B, "x86_64"],
    [ARM, "aarch64"],
  ] as const) {
    await registry.register({
      id,
      pool,
      group: "warm",
      market: "on-demand",
      az: "eu-west-1a",
      launchedAt: clock.toISOString(),
      slots: 2,
    });
  }
  return {
    store,
    ledger: createLedger(store),
    registry,
    tableName,
    setClock(iso) {
      clock = new Date(iso);
    },
  };
}
