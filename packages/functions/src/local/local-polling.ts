import type { Settings } from "@hearth/core/config";
import { createGitHubClient } from "@hearth/core/github-api/client";
import { createGitLabLists } from "@hearth/core/gitlab-api/job-lists";
import type { SimulatedForgeJobs } from "@hearth/core/simulation/forge/jobs";
import type { PollingPorts } from "../hearth";
import type { SimulatedApp } from "./simulated-app";

/**
 * What local mode polls. With the simulated forges: the simulated GitHub as the simulated App (its
 * failed deliveries, then the active repositories' runs), and the simulated GitLab with the groups
 * its projects live in (standing for the groups a deployment's pools name). Otherwise GitHub with a
 * development token (`GITHUB_TOKEN`: runs and jobs only, since a token cannot read an App's
 * deliveries) and GitLab with `GITLAB_URL` and `GITLAB_API_TOKEN`, each only when configured.
 */
export function localPolling(options: {
  settings: Settings;
  simulated?: { url(): string; app: SimulatedApp; forgeJobs(): SimulatedForgeJobs | undefined } | undefined;
}): PollingPorts {
  const { settings, simulated } = options;
  if (simulated) {
    const url = simulated.url();
    if (!url) throw new Error("local mode's simulated forges are not serving yet");
    return {
      github: {
        client: createGitHubClient({
          credentials: { kind: "app", appId: simulated.app.appId, privateKey: simulated.app.privateKey() },
          baseUrl: `${url}/sim/github`,
          writeSpacingMs: 0,
          rateLimitRetries: 0,
        }),
      },
      gitlab: {
        lists: createGitLabLists({ url: `${url}/sim/gitlab`, token: settings.STATUS_TOKEN ?? "local" }),
        url: "https://gitlab.example.com",
        groups: simulated.forgeJobs()?.gitlabTopGroups() ?? [],
      },
    };
  }
  return {
    github: settings.GITHUB_TOKEN
      ? {
          client: createGitHubClient({
            credentials: {
              kind: "personal-access-token",
              token: settings.GITHUB_TOKEN,
              forLocalModeOnly: true,
            },
            ...(settings.GITHUB_API_URL ? { baseUrl: settings.GITHUB_API_URL } : {}),
            rateLimitRetries: 0,
          }),
        }
      : undefined,
    gitlab:
      settings.GITLAB_URL && settings.GITLAB_API_TOKEN
        ? {
            lists: createGitLabLists({ url: settings.GITLAB_URL, token: settings.GITLAB_API_TOKEN }),
            url: settings.GITLAB_URL,
          }
        : undefined,
  };
}
