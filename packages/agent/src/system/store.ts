import { readdir, readFile, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { StorePort } from "../ports";

/**
 * The store's figures, cheap enough for every heartbeat: the store file system's use and free space
 * (statfs, not a walk of /nix/store), the push queue's depth and age (one file per store path
 * waiting, as the post-build hook enqueues them), and the cache keys a job hook recorded in
 * `<stateDir>/cache-keys.json` (none when there is no such file).
 */

export interface HostStoreOptions {
  storePath?: string;
  /** Null when the image pushes nothing (no binary cache). */
  pushQueueDir: string | null;
  stateDir: string;
  now?: () => number;
}

export function hostStore(options: HostStoreOptions): StorePort {
  const storePath = options.storePath ?? "/nix/store";
  const now = options.now ?? Date.now;
  return {
    async measure() {
      const fs = await statfs(storePath).catch(() => null);
      const queue = await pushQueue(options.pushQueueDir, now());
      return {
        storeBytes: fs ? (fs.blocks - fs.bfree) * fs.bsize : null,
        freeDiskBytes: fs ? fs.bavail * fs.bsize : null,
        pushQueueDepth: queue?.depth ?? null,
        pushLagSeconds: queue?.lagSeconds ?? null,
        cacheKeys: await cacheKeys(join(options.stateDir, "cache-keys.json")),
      };
    },
  };
}

async function pushQueue(dir: string | null, now: number) {
  if (dir === null) return null;
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return null;
  }
  let oldest = now;
  for (const name of names) {
    const info = await stat(join(dir, name)).catch(() => null);
    if (info && info.mtimeMs < oldest) oldest = info.mtimeMs;
  }
  return { depth: names.length, lagSeconds: Math.max(0, Math.round((now - oldest) / 1000)) };
}

async function cacheKeys(file: string): Promise<string[]> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, "utf8"));
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter((key): key is string => typeof key === "string" && key.length > 0 && key.length <= 300)
      .slice(0, 64);
  } catch {
    return [];
  }
}
