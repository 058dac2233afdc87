/**
 * Names and tags of a stage's AWS resources. They are computed, not read back from AWS, so that a
 * function's links and IAM policies can name the Auto Scaling groups before they exist, and so that
 * tests can check them. The names and tags the control plane also uses live in core's `deploy`.
 */
export {
  APP,
  groupNames,
  parameterPaths,
  resourcePrefix,
  stageTags,
  tagKeys,
} from "../../packages/core/src/deploy";

/**
 * A name in PascalCase, for SST component names (letters and digits): `oldest-queued-x86_64` →
 * `OldestQueuedX8664`. Component names must also start with a capital, so callers put a word first.
 */
export const pascal = (name: string): string =>
  name
    .split(/[_-]+/)
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");

/**
 * Pool names as parts of SST component names (`x86_64` → `X8664`, `gpu-large` → `GpuLarge`), used
 * after a word (`Pool${…}Warm`, `GitlabRunnerToken${…}`). Two pools that would map to the same part
 * are refused, since their resources would collide.
 */
export function componentNames(pools: readonly { name: string }[]): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Map<string, string>();
  for (const { name } of pools) {
    const part = pascal(name);
    const other = taken.get(part.toLowerCase());
    if (other !== undefined) {
      throw new Error(`pools "${other}" and "${name}" would share resource names (${part}); rename one`);
    }
    taken.set(part.toLowerCase(), name);
    names.set(name, part);
  }
  return names;
}
