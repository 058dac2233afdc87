/**
 * The status token, kept by the browser: for the session by default, or on this device when the
 * reader asks. It is only ever sent in the Authorization header, never in a URL.
 */

const KEY = "hearth.statusToken";

export interface TokenStore {
  get(): string | null;
  set(token: string, remember: boolean): void;
  clear(): void;
}

/** Storage can be absent or throw (private browsing, blocked cookies); then the token lives in memory. */
export function tokenStore(session: Storage | null, local: Storage | null): TokenStore {
  let memory: string | null = null;
  const read = (storage: Storage | null) => {
    try {
      return storage?.getItem(KEY) ?? null;
    } catch {
      return null;
    }
  };
  const write = (storage: Storage | null, value: string | null) => {
    try {
      if (value === null) storage?.removeItem(KEY);
      else storage?.setItem(KEY, value);
      return storage !== null;
    } catch {
      return false;
    }
  };
  return {
    get: () => memory ?? read(session) ?? read(local),
    set(token, remember) {
      memory = null;
      write(remember ? session : local, null);
      if (!write(remember ? local : session, token)) memory = token;
    },
    clear() {
      memory = null;
      write(session, null);
      write(local, null);
    },
  };
}
