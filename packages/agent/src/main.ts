import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createImdsClient } from "./aws/imds";
import { parseAgentFile, resolveAgentFile } from "./config";
import { jsonLog, productionAgent } from "./production";

/** `node agent.mjs --config /etc/hearth/agent.json`: the agent, until SIGTERM. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: "string" } }, strict: true });
  if (!values.config) throw new Error("usage: agent --config /etc/hearth/agent.json");
  const configured = parseAgentFile(await readFile(values.config, "utf8"));
  // The AWS SDK's own name for this override (a test or bench points it at a fake).
  const imds = createImdsClient(
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT
      ? { endpoint: process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT }
      : {},
  );
  let agent: Awaited<ReturnType<typeof productionAgent>> | undefined;
  let file: ReturnType<typeof resolveAgentFile> | undefined;
  // The network, IMDS and SSM may come up after the agent: it waits for them rather than failing.
  for (let wait = 1000; !agent; wait = Math.min(wait * 2, 30_000)) {
    try {
      // What the file leaves to the stage (its name, the pool, the parameters) is in the user data.
      file ??= resolveAgentFile(configured, await imds.get("/latest/user-data"));
      agent = await productionAgent(file, {
        imds,
        ...(process.env.AWS_ENDPOINT_URL_SSM ? { ssmEndpoint: process.env.AWS_ENDPOINT_URL_SSM } : {}),
      });
    } catch (error) {
      jsonLog.warn("cannot start yet", { error: error instanceof Error ? error.message : String(error) });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  const started = agent;
  // Runners and gitlab-runner outlive the agent: stopping it stops no job.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      started.stop();
      process.exit(0);
    });
  }
  jsonLog.info("agent started", { pool: file?.pool, slots: file?.slots, stage: file?.stage });
  started.run();
  // The clock's timers do not hold the process open; this does.
  setInterval(() => {}, 1 << 30);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
