import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConfigError, loadHearthConfig, stageSettings } from "@hearth/core/config";
import { GitLabTokenRefused, poolRunnerSpecs } from "@hearth/core/gitlab-api";
import { createPoolRunners } from "@hearth/core/gitlab-api/pool-runners";
import { createGitLabRunnerAdmin } from "@hearth/core/gitlab-api/runner-client";
import { sstSecrets } from "./sst-secrets";

const usage = `Usage: npm run runners -- --stage NAME [--config FILE] [--dry-run] [--replace]

Creates each pool's GitLab runner (POST /user/runners), for the pools whose config says where
("gitlab": { "project": "group/project" } | { "group": "group/sub" } | { "instance": true }), with the
pool's labels as tags and its maxJobMinutes as maximum_timeout, and stores its token as the stage
secret GitlabRunnerToken<Pool> (sst secret set). A pool whose runner exists, or whose secret is set,
is skipped; an existing runner whose maximum_timeout differs from the pool's limit gets it.
  --stage NAME   the stage whose secrets receive the tokens
  --config FILE  the Hearth config (default: $HEARTH_CONFIG, or hearth.config.json)
  --dry-run      say what would be created, create nothing and set nothing
  --replace      create a new runner even where one exists (the old one stays until deleted in GitLab)

Environment: GITLAB_API_TOKEN, a token with the create_runner scope (and manage_runner, or api, to
change an existing runner's maximum_timeout); GITLAB_URL, a self-managed GitLab (default: the
config's gitlab.url, else https://gitlab.com).`;

const projectRoot = fileURLToPath(new URL("../../../../", import.meta.url));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      stage: { type: "string" },
      config: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      replace: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.stage) throw new Error("give the stage: npm run runners -- --stage NAME (--help for more)");
  const configFile = values.config ?? process.env.HEARTH_CONFIG ?? join(projectRoot, "hearth.config.json");
  const settings = stageSettings(
    loadHearthConfig(configFile, { required: values.config !== undefined }),
    values.stage,
  );
  const specs = poolRunnerSpecs(settings.stage, settings.pools);
  const report = (line: string) => console.log(line);
  if (specs.length === 0) {
    report(
      'No pool of this stage says where its GitLab runner registers; give one "gitlab": { "project": "group/project" }, { "group": "group" } or { "instance": true }.',
    );
    return 0;
  }
  const token = process.env.GITLAB_API_TOKEN?.trim();
  if (!token) {
    throw new Error(
      "set GITLAB_API_TOKEN to a GitLab access token with the create_runner scope (Maintainer of the project, Owner of the group, or an administrator for instance runners)",
    );
  }
  const url = process.env.GITLAB_URL?.trim() || settings.gitlab.url;
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new Error(`GITLAB_URL must be an http(s) URL, not "${url}"`);
  }
  if (values["dry-run"]) report(`Dry run: nothing is created or set. GitLab: ${url}`);
  try {
    await createPoolRunners({
      specs,
      admin: createGitLabRunnerAdmin({ url, token }),
      secrets: sstSecrets({ stage: settings.stage, projectRoot }),
      dryRun: values["dry-run"],
      replace: values.replace,
      report,
    });
  } catch (error) {
    // One line, and never the API token, whatever the failure says.
    const message = (error instanceof Error ? error.message : String(error)).split(token).join("[redacted]");
    throw new Error(error instanceof GitLabTokenRefused ? `${message} (GITLAB_API_TOKEN)` : message);
  }
  if (!values["dry-run"])
    report(`Deploy the stage for its instances to use new tokens: npx sst deploy --stage ${settings.stage}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    const message = error instanceof Error ? error.message : String(error);
    // A config file's mistakes keep one line each, so that one edit fixes them all; anything else is one line.
    process.stderr.write(
      `runners: ${error instanceof ConfigError ? message : message.replace(/\s*\n\s*/g, "; ")}\n`,
    );
    process.exit(1);
  },
);
