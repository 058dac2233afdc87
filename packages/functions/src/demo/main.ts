import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseTrace } from "@hearth/core/simulation/trace";
import { readLocalSecrets } from "../local/secrets-file";
import { demoJobs, replay, watchDrain } from "./index";

const usage = `Usage: npm run demo -- [--trace FILE] [--speed N] [--limit N] [--url URL] [--webhook-loss R]

Replays a job trace into a running local Hearth (npm start) as signed GitLab and GitHub webhooks.
  --trace FILE  a trace in the format of traces/README.md (default: a bundled two-hour sample)
  --speed N     how much faster than the trace (default 60: an hour in a minute)
  --limit N     send at most N jobs
  --url URL     the local Hearth (default http://127.0.0.1:$PORT or :3000)
  --webhook-loss R  set the simulated forges' webhook loss rate (0 to 1) before replaying. With a
                rate above 0 (this one or the server's), each job is queued in the simulated forge,
                which sends its webhook itself and drops that share: polling has to find them`;

async function main() {
  const { values } = parseArgs({
    options: {
      trace: { type: "string" },
      speed: { type: "string", default: "60" },
      limit: { type: "string" },
      url: { type: "string" },
      "webhook-loss": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const lossText = values["webhook-loss"];
  if (lossText !== undefined && !/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/.test(lossText))
    throw new Error(`--webhook-loss must be a share from 0 to 1, got ${lossText}`);
  const speed = Number(values.speed);
  if (!(speed > 0)) throw new Error(`--speed must be a positive number, got ${values.speed}`);
  const file = values.trace ?? new URL("../../demo/sample-trace.csv", import.meta.url).pathname;
  const trace = parseTrace(readFileSync(file, "utf8"), file);
  if (values.limit !== undefined && !/^\d+$/.test(values.limit))
    throw new Error(`--limit must be a whole number of jobs, got ${values.limit}`);
  const rows = values.limit === undefined ? trace.jobs : trace.jobs.slice(0, Number(values.limit));
  // The secrets of the Hearth asked for (`--url`), or of the one started last.
  const local = readLocalSecrets(values.url);
  const url = values.url ?? local?.url ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`;
  // One clear line when nothing answers, rather than the fetch's "fetch failed".
  try {
    await (await fetch(new URL("/healthz", url))).arrayBuffer();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new Error(
      `no Hearth answers at ${url}${cause ? ` (${cause})` : ""}: start it with \`npm start\` in another terminal, or pass --url`,
    );
  }
  const secrets = {
    githubWebhookSecret: process.env.GITHUB_WEBHOOK_SECRET ?? local?.githubWebhookSecret ?? "",
    gitlabWebhookToken: process.env.GITLAB_WEBHOOK_TOKEN ?? local?.gitlabWebhookToken ?? "",
    gitlabSigningToken: process.env.GITLAB_SIGNING_TOKEN,
  };
  if (!secrets.githubWebhookSecret || !secrets.gitlabWebhookToken) {
    throw new Error(
      `no webhook secrets for ${url}: start Hearth with \`npm start\` first, or set them in the environment`,
    );
  }
  const authorization: Record<string, string> = process.env.STATUS_TOKEN
    ? { authorization: `Bearer ${process.env.STATUS_TOKEN}` }
    : {};
  const lossAnswer = await fetch(new URL("/sim/forge/webhook-loss", url), {
    method: lossText === undefined ? "GET" : "PUT",
    headers: { "content-type": "application/json", ...authorization },
    ...(lossText === undefined ? {} : { body: JSON.stringify({ rate: Number(lossText) }) }),
  });
  const loss = lossAnswer.ok ? ((await lossAnswer.json()) as { rate: number }).rate : 0;
  if (lossText !== undefined && !lossAnswer.ok)
    throw new Error(`PUT /sim/forge/webhook-loss answered ${lossAnswer.status}: is this Hearth simulated?`);
  const jobs = demoJobs(rows, { speed, firstId: Math.floor(Date.now() / 1000) * 1000 });
  const span = jobs.at(-1)?.at ?? 0;
  process.stderr.write(
    `Replaying ${jobs.length} jobs from ${file} into ${url}, ${speed}× (${Math.ceil(span)} s)${
      loss > 0 ? `, the simulated forges dropping ${Math.round(loss * 100)}% of webhooks` : ""
    }\n`,
  );
  const started = Date.now();
  const result = await replay(jobs, {
    url,
    secrets,
    now: () => new Date(),
    statusToken: process.env.STATUS_TOKEN,
    viaForge: loss > 0,
    waitUntil: async (seconds) => {
      const delay = started + seconds * 1000 - Date.now();
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    },
    onSent: (job, status) =>
      process.stderr.write(
        `  ${job.job.source} job ${job.job.id} (${job.job.labels.join(",")}): ${status}\n`,
      ),
  });
  process.stderr.write(
    `Sent ${result.sent} jobs (${result.refused} refused${
      result.dropped ? `, ${result.dropped} more whose webhook the forge dropped` : ""
    }). Watch them at ${url}/\n` +
      "Waiting for the queue to drain (Ctrl-C stops watching; Hearth keeps going)…\n",
  );
  // The replay compresses hours into minutes while instances still take their real boot times, so
  // the end of the replay is mid-burst: what tells whether Hearth keeps up is how soon the queue empties.
  const drain = await watchDrain({
    url,
    token: process.env.STATUS_TOKEN,
    everySeconds: 5,
    timeoutSeconds: 600,
    sleep: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
    onProgress: (look) => {
      if (look.seconds % 15 === 0 || look.queued === 0)
        process.stderr.write(`  +${look.seconds} s: ${look.queued} queued, ${look.running} running\n`);
    },
  });
  const unroutable = drain.last.unroutable;
  process.stderr.write(
    (drain.drained
      ? `Every job ${unroutable ? "that matches a pool " : ""}has started: the queue emptied ${drain.last.seconds} s after the last webhook; the longest wait seen was ${drain.longestWaitSeconds} s.\n`
      : `${drain.last.queued} jobs still queued after ${drain.last.seconds} s: see ${url}/ for why (the timeline says what Hearth decided).\n`) +
      (unroutable
        ? `${unroutable} ${unroutable === 1 ? "job" : "jobs"} on the status page (this replay's or earlier) ${unroutable === 1 ? "matches" : "match"} no pool and will not start: it lists them under Unroutable.\n`
        : ""),
  );
}

main().catch((error) => {
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
