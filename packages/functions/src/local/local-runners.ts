import type { Settings } from "@hearth/core/config";
import type { RunnerScope } from "@hearth/core/github-api";
import { createGitHubClient, type GitHubClient } from "@hearth/core/github-api/client";
import { MintingBudget, runnersFor, type ScopeRunners } from "@hearth/core/github-api/runners";
import { createGitLabRunnerManagers } from "@hearth/core/gitlab-api/runner-client";
import type { PoolConfig } from "@hearth/core/pools";
import type { GitLabRunnerPort } from "@hearth/core/runners";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";

/**
 * Runner identity in local mode. With the simulated fleet, Hearth registers its runners with the
 * simulated forges this process plays, over their HTTP APIs (`/sim/github`, `/sim/gitlab`), with the
 * same clients it uses against GitHub and GitLab; a pool without a GitHub scope registers in the
 * simulated organization `local`. With `--fleet aws`, a personal access token (`GITHUB_TOKEN`) is
 * accepted for development, with `GITHUB_API_URL`; without one, no GitHub runner is registered.
 */

/** Where a pool's runners register when it names no scope and the forge is local mode's own. */
export const SIMULATED_ORGANIZATION: RunnerScope = { organization: "local", runnerGroupId: 1 };

/** Pools as the simulated forges see them: each has a GitHub scope. */
export function simulatedScopes(pools: readonly PoolConfig[]): PoolConfig[] {
  return pools.map((pool) => (pool.github ? pool : { ...pool, github: SIMULATED_ORGANIZATION }));
}

function scopes(client: () => GitHubClient): (scope: RunnerScope) => ScopeRunners {
  const budget = new MintingBudget();
  let made: GitHubClient | undefined;
  return (scope) => {
    made ??= client();
    return runnersFor(made, scope, budget);
  };
}

/** The simulated forges' address, once local mode listens (a client made before would have none). */
function served(simulated: { url(): string }): string {
  const url = simulated.url();
  if (!url) throw new Error("local mode's simulated forges are not serving yet");
  return url;
}

/** GitHub's runners API for local mode, or undefined when it has none. */
export function localGitHub(options: {
  settings: Settings;
  /**
   * The simulated forge's URL, once the server listens, and local mode's clock; absent with a real
   * fleet.
   */
  simulated?: { url(): string; now(): number } | undefined;
}): ((scope: RunnerScope) => ScopeRunners) | undefined {
  const { settings, simulated } = options;
  if (simulated) {
    return scopes(() =>
      createGitHubClient({
        // The simulated forge asks for the status token when one is set, as the other /sim routes do.
        credentials: {
          kind: "personal-access-token",
          token: settings.STATUS_TOKEN ?? "local",
          forLocalModeOnly: true,
        },
        baseUrl: `${served(simulated)}/sim/github`,
        writeSpacingMs: 0,
        // The simulated forge runs in this process: a retry after its 5xx or 429 (an injected fault)
        // waits milliseconds where GitHub's would wait seconds, and its times are local mode's clock.
        retryAfterBaseMs: 10,
        now: () => simulated.now(),
      }),
    );
  }
  const token = settings.GITHUB_TOKEN;
  if (!token) return undefined;
  return scopes(() =>
    createGitHubClient({
      credentials: { kind: "personal-access-token", token, forLocalModeOnly: true },
      ...(settings.GITHUB_API_URL ? { baseUrl: settings.GITHUB_API_URL } : {}),
    }),
  );
}

/**
 * GitLab's runner managers, over the simulated GitLab's API (`/sim/gitlab`) with Hearth's own client,
 * and each pool's runner token there (made when local mode started: `forge` is read when used).
 */
export function localGitLabRunners(options: {
  url(): string;
  forge(): SimulatedForgeRunners | undefined;
}): GitLabRunnerPort {
  let made: GitLabRunnerPort["managers"] | undefined;
  const managers = () => {
    made ??= createGitLabRunnerManagers({ url: `${served(options)}/sim/gitlab` });
    return made;
  };
  return {
    managers: {
      deleteManager: (token, systemId) => managers().deleteManager(token, systemId),
      runnerId: (token) => managers().runnerId(token),
    },
    tokenOf: (pool) => options.forge()?.gitlab.tokenOf(pool),
  };
}
