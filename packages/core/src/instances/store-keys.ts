/**
 * The cache keys a store holds, as the control plane knows them: no dependency, so that the registry
 * and both simulators (`simulation/rules`) share them.
 *
 * A store stays warm for the cache keys of the 12 jobs it finished most recently (LRU, as its garbage
 * collection by disk budget), the fleet model's figure (`traces/README.md`).
 */
export const STORE_KEYS = 12;

/** At most this many keys go in a heartbeat, and on an instance record. */
export const CACHE_KEYS_MAX = 64;

/**
 * The store finished a job with `key`: the key moves to the front (most recent first), and the least
 * recently used one falls off past `capacity`. Changes `keys` in place.
 */
export function rememberKey(keys: string[], key: string, capacity: number = STORE_KEYS): void {
  if (capacity <= 0) return;
  const at = keys.indexOf(key);
  if (at === 0) return;
  if (at > 0) keys.splice(at, 1);
  else while (keys.length >= capacity) keys.pop();
  keys.unshift(key);
}

/**
 * What a store holds: the keys of the jobs that finished on its instance (the control plane's own
 * record, most recent first), then any its agent reports that those do not name (an image may write
 * them to `cache-keys.json`), at most `CACHE_KEYS_MAX`.
 */
export function storeKeys(finished: readonly string[], reported: readonly string[]): string[] {
  return [...new Set([...finished, ...reported])].slice(0, CACHE_KEYS_MAX);
}
