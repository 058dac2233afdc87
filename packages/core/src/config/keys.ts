import * as z from "zod";

/**
 * Strict config objects: a key Hearth does not know is an error that names its JSON path and the key
 * that was probably meant. Plain zod, no other dependency, so that infra and every package may use it.
 */

/** Edit distance (insertions, deletions, substitutions), for suggesting the key that was meant. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The known key closest to `key`, when close enough to be a slip of the keyboard. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  // `warmSecs` for `warmSeconds` is 3 edits; a third of the key's length allows that, and no wild guess.
  if (best && best.distance <= Math.max(2, Math.ceil(key.length / 3))) return best.key;
  // A key cut short (`oldestQueued` for `oldestQueuedSeconds`): the shortest known key it begins.
  const lower = key.toLowerCase();
  const longer = known.filter((name) => lower.length >= 3 && name.toLowerCase().startsWith(lower));
  return longer.sort((a, b) => a.length - b.length)[0];
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const near = nearestKey(key, known);
  return near
    ? `unknown key "${key}"; did you mean "${near}"?`
    : `unknown key "${key}"; known keys: ${known.map((name) => `"${name}"`).join(", ")}`;
}

/**
 * An object that refuses keys it does not know, so that a misspelled setting is an error instead of
 * a silent default. The message names each unknown key and the known key nearest to it.
 */
export function strictObject<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? issue.keys.map((key) => unknownKeyMessage(key, known)).join("\n")
        : undefined,
  });
}

/** `pools[0].idleTimeouts.warmSecs`: where in a JSON document an issue is. */
export function jsonPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else if (typeof segment === "string" && /^[A-Za-z_$][\w$]*$/.test(segment))
      text += text ? `.${segment}` : segment;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text || "(root)";
}

/**
 * Every issue of a config document, one line each, by JSON path. An unknown key is reported at its
 * own path (`pools[0].maxInstance: unknown key "maxInstance"; did you mean "maxInstances"?`).
 */
export function describeConfigIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    if (issue.code !== "unrecognized_keys") return [`${jsonPath(issue.path)}: ${issue.message}`];
    const messages = issue.message.split("\n");
    return issue.keys.map(
      (key, index) => `${jsonPath([...issue.path, key])}: ${messages[index] ?? "unknown key"}`,
    );
  });
}
