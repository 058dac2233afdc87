import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * Secrets local mode generated (because none was configured), kept where `npm run demo` finds them:
 * a file only the user can read, under node_modules/.cache, never in the repository. Each local
 * Hearth started from this checkout has its own entry, by URL, so that a demo pointed at one of two
 * (`--url`) signs with that one's secrets.
 */
export interface LocalSecrets {
  url: string;
  githubWebhookSecret?: string;
  gitlabWebhookToken?: string;
}

interface SecretsFile {
  /** The entries, the most recently started last. */
  hearths: LocalSecrets[];
}

/** Entries kept: Hearths started long ago and stopped are forgotten. */
const KEPT = 10;

const defaultFile = join(process.cwd(), "node_modules/.cache/hearth/local.json");

export function writeLocalSecrets(secrets: LocalSecrets, file = defaultFile): void {
  const others = readAll(file).filter((entry) => !sameHearth(entry.url, secrets.url));
  const content: SecretsFile = { hearths: [...others, secrets].slice(-KEPT) };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * The secrets of the Hearth at `url` (the same origin, or the same port on the loopback), or, with
 * no `url`, of the one started last. Undefined when none is known.
 */
export function readLocalSecrets(url?: string, file = defaultFile): LocalSecrets | undefined {
  const all = readAll(file);
  if (url === undefined) return all[all.length - 1];
  return all.findLast((entry) => sameHearth(entry.url, url));
}

/** The file's entries; an unreadable or foreign file counts as none (it is rewritten on the next start). */
function readAll(file: string): LocalSecrets[] {
  if (!existsSync(file)) return [];
  let content: unknown;
  try {
    content = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return [];
  }
  const entries = (content as Partial<SecretsFile> | null)?.hearths ?? [content];
  return Array.isArray(entries)
    ? entries.filter((entry): entry is LocalSecrets => typeof (entry as LocalSecrets)?.url === "string")
    : [];
}

const loopback = new Set(["127.0.0.1", "localhost", "[::1]"]);

function sameHearth(a: string, b: string): boolean {
  let x: URL;
  let y: URL;
  try {
    x = new URL(a);
    y = new URL(b);
  } catch {
    return false;
  }
  if (x.origin === y.origin) return true;
  return x.port === y.port && loopback.has(x.hostname) && loopback.has(y.hostname);
}
