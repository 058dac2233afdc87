import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BINARY_CACHE_KEY_SECRET, setCacheKey } from "@hearth/core/binary-cache";
import { stageNamePattern } from "@hearth/core/config";
import { sstSecrets } from "./sst-secrets";

const usage = `Usage: npm run cache-key -- --stage NAME [--replace]

Makes the stage's Nix binary cache signing key (Ed25519, in Nix's format, named hearth-<stage>-1),
stores its secret half as the stage secret ${BINARY_CACHE_KEY_SECRET} (sst secret set, on standard
input) and prints the public half. A stage whose key is set keeps it unless --replace is given.
  --stage NAME   the stage whose secret receives the key
  --replace      make a new key even though one is set`;

const projectRoot = fileURLToPath(new URL("../../../../", import.meta.url));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      stage: { type: "string" },
      replace: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.stage) throw new Error("give the stage: npm run cache-key -- --stage NAME (--help for more)");
  if (!stageNamePattern.test(values.stage)) {
    throw new Error(
      `stage "${values.stage}": use lower-case letters, digits and "-", starting with a letter, at most 24`,
    );
  }
  const outcome = await setCacheKey({
    stage: values.stage,
    secrets: sstSecrets({ stage: values.stage, projectRoot }),
    replace: values.replace,
  });
  if (outcome.action === "kept") {
    console.error(`cache-key: ${outcome.reason}`);
    return 1;
  }
  // The public key alone on stdout, so that `$(npm run -s cache-key -- --stage S)` captures it.
  console.error(
    `${outcome.replaced ? "Replaced" : "Set"} ${BINARY_CACHE_KEY_SECRET} for stage ${values.stage}. ` +
      `Deploy the stage for new instances to sign with it: npx sst deploy --stage ${values.stage}. Its public key:`,
  );
  console.log(outcome.publicKey);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`cache-key: ${message.replace(/\s*\n\s*/g, "; ")}\n`);
    process.exit(1);
  },
);
