import { describe, expect, it } from "vitest";
import { tokenStore } from "../src/token";

/** The Web Storage interface over a Map, optionally refusing writes like Safari's private mode did. */
function memoryStorage(options: { refuseWrites?: boolean } = {}): Storage & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    get length() {
      return data.size;
    },
    clear: () => data.clear(),
    getItem: (key) => data.get(key) ?? null,
    key: (index) => [...data.keys()][index] ?? null,
    removeItem: (key) => {
      data.delete(key);
    },
    setItem: (key, value) => {
      if (options.refuseWrites) throw new DOMException("quota exceeded", "QuotaExceededError");
      data.set(key, value);
    },
  };
}

describe("tokenStore", () => {
  it("keeps the token for the session unless asked to remember it", () => {
    const session = memoryStorage();
    const local = memoryStorage();
    const tokens = tokenStore(session, local);
    expect(tokens.get()).toBeNull();

    tokens.set("for-now", false);
    expect(tokens.get()).toBe("for-now");
    expect([session.data.size, local.data.size]).toEqual([1, 0]);

    tokens.set("for-good", true);
    expect(tokens.get()).toBe("for-good");
    // Remembering moves it: there is never a second, older copy.
    expect([session.data.size, local.data.size]).toEqual([0, 1]);
  });

  it("finds a remembered token in a new session", () => {
    const local = memoryStorage();
    tokenStore(memoryStorage(), local).set("kept", true);
    expect(tokenStore(memoryStorage(), local).get()).toBe("kept");
  });

  it("forgets it everywhere", () => {
    const session = memoryStorage();
    const local = memoryStorage();
    const tokens = tokenStore(session, local);
    tokens.set("a", true);
    session.setItem("hearth.statusToken", "b");
    tokens.clear();
    expect(tokens.get()).toBeNull();
    expect([session.data.size, local.data.size]).toEqual([0, 0]);
  });

  it("falls back to memory when storage is missing or refuses", () => {
    const refusing = tokenStore(memoryStorage({ refuseWrites: true }), memoryStorage({ refuseWrites: true }));
    refusing.set("in-memory", false);
    expect(refusing.get()).toBe("in-memory");
    refusing.clear();
    expect(refusing.get()).toBeNull();

    const none = tokenStore(null, null);
    none.set("also-in-memory", true);
    expect(none.get()).toBe("also-in-memory");
  });
});
