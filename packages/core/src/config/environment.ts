import { Webhook } from "standardwebhooks";
import * as z from "zod";
import { ConfigError } from "./error";

const optional = z
  .string()
  .optional()
  .transform((value) => (value?.trim() ? value.trim() : undefined));

/** A key the Standard Webhooks reference implementation takes (well-formed base64, not empty). */
function isSigningKey(value: string): boolean {
  try {
    new Webhook(value);
    return true;
  } catch {
    return false;
  }
}

/** Settings read from the environment (locally) or from linked `sst.Secret`s (in AWS). */
export const settingsSchema = z.object({
  GITHUB_WEBHOOK_SECRET: optional,
  GITLAB_WEBHOOK_TOKEN: optional,
  GITLAB_SIGNING_TOKEN: optional.refine(
    (value) => value === undefined || (/^whsec_[A-Za-z0-9+/=]+$/.test(value) && isSigningKey(value)),
    {
      message: "GITLAB_SIGNING_TOKEN must look like whsec_<base64>, as GitLab shows it",
    },
  ),
  GITLAB_URL: optional.pipe(z.url({ protocol: /^https?$/ }).optional()),
  GITLAB_API_TOKEN: optional,
  /** GitHub's REST API for local mode (GitHub Enterprise Server: `https://<host>/api/v3`). */
  GITHUB_API_URL: optional.pipe(z.url({ protocol: /^https?$/ }).optional()),
  STATUS_TOKEN: optional,
});
export type Settings = z.infer<typeof settingsSchema>;

/** Reads settings, failing with a message that names the variable (never its value). */
export function readSettings(env: Record<string, string | undefined>): Settings {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${issue?.path.join(".")}: ${issue?.message}`);
  }
  return parsed.data;
}
