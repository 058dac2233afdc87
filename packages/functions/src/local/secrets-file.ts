import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * Secrets local mode generated (because none was configured), kept where `npm run demo` finds them:
 * a file only the user can read, under node_modules/.cache, never in the repository.
 */
export interface LocalSecrets {
  url: string;
  githubWebhookSecret?: string;
  gitlabWebhookToken?: string;
}

const file = join(process.cwd(), "node_modules/.cache/hearth/local.json");

export function writeLocalSecrets(secrets: LocalSecrets): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function readLocalSecrets(): LocalSecrets | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as LocalSecrets;
}
