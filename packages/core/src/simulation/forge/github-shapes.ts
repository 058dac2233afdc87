/**
 * The objects GitHub's REST API nests in its answers (a user, a minimal repository), with every field
 * its OpenAPI description requires, for the simulated GitHub's listings.
 */

const api = "https://api.github.com";

export function simpleUser(login: string, id = 1) {
  const url = `${api}/users/${login}`;
  return {
    login,
    id,
    node_id: `U_${id}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${id}`,
    gravatar_id: "",
    url,
    html_url: `https://github.com/${login}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type: "Organization",
    site_admin: false,
  };
}

const repositoryUrls = [
  "archive_url",
  "assignees_url",
  "blobs_url",
  "branches_url",
  "collaborators_url",
  "comments_url",
  "commits_url",
  "compare_url",
  "contents_url",
  "contributors_url",
  "deployments_url",
  "downloads_url",
  "events_url",
  "forks_url",
  "git_commits_url",
  "git_refs_url",
  "git_tags_url",
  "hooks_url",
  "issue_comment_url",
  "issue_events_url",
  "issues_url",
  "keys_url",
  "labels_url",
  "languages_url",
  "merges_url",
  "milestones_url",
  "notifications_url",
  "pulls_url",
  "releases_url",
  "stargazers_url",
  "statuses_url",
  "subscribers_url",
  "subscription_url",
  "tags_url",
  "teams_url",
  "trees_url",
] as const;

export function minimalRepository(fullName: string) {
  const [owner = "", name = fullName] = fullName.split("/");
  const url = `${api}/repos/${fullName}`;
  return {
    id: 1,
    node_id: "R_1",
    name,
    full_name: fullName,
    owner: simpleUser(owner),
    private: true,
    html_url: `https://github.com/${fullName}`,
    description: null,
    fork: false,
    url,
    ...Object.fromEntries(repositoryUrls.map((key) => [key, `${url}/${key.replace(/_url$/, "")}`])),
  };
}
