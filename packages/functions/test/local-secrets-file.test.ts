import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readLocalSecrets, writeLocalSecrets } from "../src/local/secrets-file";

/** The file `npm start` writes its generated secrets to and `npm run demo` reads them from. */
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempFile = () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-local-"));
  dirs.push(dir);
  return join(dir, "cache", "local.json");
};

describe("the local secrets file", () => {
  it("keeps each local Hearth's secrets, so that a demo pointed at one signs with its own", () => {
    const file = tempFile();
    writeLocalSecrets(
      { url: "http://127.0.0.1:3000", githubWebhookSecret: "a", gitlabWebhookToken: "A" },
      file,
    );
    writeLocalSecrets(
      { url: "http://127.0.0.1:3001", githubWebhookSecret: "b", gitlabWebhookToken: "B" },
      file,
    );
    // No URL: the one started last.
    expect(readLocalSecrets(undefined, file)?.githubWebhookSecret).toBe("b");
    expect(readLocalSecrets("http://127.0.0.1:3000", file)?.githubWebhookSecret).toBe("a");
    // The same port on the loopback is the same Hearth, however it is written.
    expect(readLocalSecrets("http://localhost:3000/", file)?.gitlabWebhookToken).toBe("A");
    expect(readLocalSecrets("http://127.0.0.1:4000", file)).toBeUndefined();
    expect(readLocalSecrets("http://10.0.0.5:3000", file)).toBeUndefined();
    expect(readLocalSecrets("not a url", file)).toBeUndefined();
    // Started again on the same port: its new secrets replace the old ones.
    writeLocalSecrets(
      { url: "http://127.0.0.1:3000", githubWebhookSecret: "c", gitlabWebhookToken: "C" },
      file,
    );
    expect(readLocalSecrets("http://127.0.0.1:3000", file)?.githubWebhookSecret).toBe("c");
    expect(readLocalSecrets(undefined, file)?.githubWebhookSecret).toBe("c");
    expect(JSON.parse(readFileSync(file, "utf8")).hearths).toHaveLength(2);
    // Only the user can read it.
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("reads the single entry an older version wrote, and treats a damaged file as empty", () => {
    const file = tempFile();
    writeLocalSecrets({ url: "http://127.0.0.1:3000" }, file);
    writeFileSync(file, JSON.stringify({ url: "http://127.0.0.1:3000", githubWebhookSecret: "old" }));
    expect(readLocalSecrets(undefined, file)?.githubWebhookSecret).toBe("old");
    writeFileSync(file, "{ not json");
    expect(readLocalSecrets(undefined, file)).toBeUndefined();
    writeFileSync(file, "null");
    expect(readLocalSecrets(undefined, file)).toBeUndefined();
    // The next start writes a good file over it.
    writeLocalSecrets({ url: "http://127.0.0.1:3000", githubWebhookSecret: "new" }, file);
    expect(readLocalSecrets(undefined, file)?.githubWebhookSecret).toBe("new");
  });

  it("forgets the oldest beyond ten", () => {
    const file = tempFile();
    for (let port = 3000; port < 3012; port++) writeLocalSecrets({ url: `http://127.0.0.1:${port}` }, file);
    expect(readLocalSecrets("http://127.0.0.1:3001", file)).toBeUndefined();
    expect(readLocalSecrets("http://127.0.0.1:3002", file)?.url).toBe("http://127.0.0.1:3002");
  });
});
