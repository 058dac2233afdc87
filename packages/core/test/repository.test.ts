import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// What a fresh clone has: the docs' links and commands may point at nothing outside it.
const root = resolve(new URL("../../../", import.meta.url).pathname);
const docs = [
  "README.md",
  "traces/README.md",
  "packages/functions/demo/README.md",
  "packages/agent/README.md",
  ...readdirSync(join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

const inside = (path: string) => {
  const rel = relative(root, path);
  return !rel.startsWith("..") && existsSync(path);
};

describe("the repository's docs", () => {
  it.each(docs)("%s links only to files inside the repository", (doc) => {
    const text = readFileSync(join(root, doc), "utf8");
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)]
      .map((match) => (match[1] ?? "").split("#")[0] ?? "")
      .filter((target) => target !== "" && !/^[a-z]+:/.test(target));
    const broken = targets.filter((target) => !inside(resolve(root, dirname(doc), target)));
    expect(broken).toEqual([]);
  });

  it.each(docs)("%s runs commands only on files inside the repository", (doc) => {
    const text = readFileSync(join(root, doc), "utf8");
    // Paths given to the simulator and the demo are relative to the repository root, where npm runs.
    const paths = [...text.matchAll(/--traces? ([^\s`]+)/g)].map((match) => match[1] ?? "");
    const missing = paths.filter((path) => !/^[A-Z]+…?\]?$/.test(path) && !inside(resolve(root, path)));
    expect(missing).toEqual([]);
  });

  it("ships the traces the docs replay", () => {
    for (const name of ["bitcoin-core-gha-2025-09.csv", "synthetic-diurnal.csv", "synthetic-bursty.csv"]) {
      expect(readFileSync(join(root, "traces", name), "utf8")).toMatch(/^job_id,created_at_s,/);
    }
  });
});
