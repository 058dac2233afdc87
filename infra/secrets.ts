import { BINARY_CACHE_KEY_PLACEHOLDER, BINARY_CACHE_KEY_SECRET } from "../packages/core/src/binary-cache";
import { gitlabRunnerTokenSecrets } from "../packages/core/src/deploy";
import { settings } from "./config";

/**
 * The stage's secrets, set with `npx sst secret set <Name> <value> --stage <stage>`. SST keeps them
 * encrypted in the stage's state and hands each only to the functions that link it.
 *
 * Only the status token is required (a deployed status API always asks for one). The others default
 * to empty, which Hearth reads as "not configured": a stage may serve only GitHub or only GitLab, and
 * a webhook route whose secret is unset answers 503 rather than accepting unsigned deliveries.
 */
const optional = (name: string) => new sst.Secret(name, "");

export const githubWebhookSecret = optional("GithubWebhookSecret");
export const gitlabWebhookToken = optional("GitlabWebhookToken");
/** GitLab's signing token (`whsec_…`), where the instance signs webhooks. */
export const gitlabSigningToken = optional("GitlabSigningToken");
/** Reads a pending job's tags (`read_api`), which the Job Hook does not carry. */
export const gitlabApiToken = optional("GitlabApiToken");
/**
 * The GitHub App that mints and deletes just-in-time runners: linked to the functions that do (the
 * API, which answers heartbeats, and ScaleFleet's observe, which sees instances leave service). Empty:
 * no GitHub runner is minted.
 */
export const githubAppId = optional("GithubAppId");
export const githubAppPrivateKey = optional("GithubAppPrivateKey");
export const statusToken = new sst.Secret("StatusToken");
/**
 * The binary cache's secret signing key, in Nix's format, set by `npm run cache-key`. Until then it
 * holds a placeholder, so a stage deploys without it; instances take the placeholder as no key and
 * queue their builds without pushing them.
 */
export const binaryCacheSigningKey = new sst.Secret(BINARY_CACHE_KEY_SECRET, BINARY_CACHE_KEY_PLACEHOLDER);

/**
 * Per pool, the GitLab runner authentication token (`glrt-…`) its instances run with: set by hand, or
 * created and set by `npm run runners` (which names them with the same function).
 */
export const runnerTokens = new Map(
  [...gitlabRunnerTokenSecrets(settings.pools)].map(([pool, name]) => [pool, optional(name)]),
);

/**
 * The same tokens by pool name, as one link (`GitlabRunnerTokens`) for the ScaleFleet functions,
 * which delete a terminated instance's runner manager with its pool's token. One link rather than
 * one per pool, so the functions' links stay the same whatever the pools; SST encrypts a link's
 * values into the function's bundle as it does a secret's.
 */
export const gitlabRunnerTokens = new sst.Linkable("GitlabRunnerTokens", {
  properties: {
    tokens: Object.fromEntries([...runnerTokens].map(([pool, secret]) => [pool, secret.value])),
  },
});
