import { randomBytes } from "node:crypto";
import type { Settings } from "@hearth/core/config";

/**
 * The webhook secrets local mode runs with: the configured ones, or random ones when none is set (so
 * that local mode never accepts unsigned webhooks). `generated` names those it made, for the start-up
 * message and the file `npm run demo` reads them from.
 */
export function webhookSecrets(settings: Settings): {
  githubWebhookSecret: string;
  gitlabWebhookToken: string;
  generated: string[];
} {
  const generated: string[] = [];
  const secret = (value: string | undefined, name: string) => {
    if (value) return value;
    generated.push(name);
    return randomBytes(24).toString("hex");
  };
  return {
    githubWebhookSecret: secret(settings.GITHUB_WEBHOOK_SECRET, "GITHUB_WEBHOOK_SECRET"),
    gitlabWebhookToken: secret(settings.GITLAB_WEBHOOK_TOKEN, "GITLAB_WEBHOOK_TOKEN"),
    generated,
  };
}
