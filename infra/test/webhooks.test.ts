import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Fetch, stageOutputs, syncGitHubHook, syncGitLabHook } from "../../scripts/webhooks";

/** A forge API that answers from a table of routes and records what it was asked. */
function fakeApi(routes: Record<string, (body: unknown) => { status?: number; json: unknown }>) {
  const requests: Array<{ method: string; path: string; headers: Record<string, string>; body: unknown }> =
    [];
  const fetchImpl: Fetch = async (input, init) => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    requests.push({ method, path: url.pathname, headers: init?.headers as Record<string, string>, body });
    const route = routes[`${method} ${url.pathname}`];
    if (!route) return new Response(JSON.stringify({ message: "404 Not found" }), { status: 404 });
    const { status, json } = route(body);
    return new Response(JSON.stringify(json), { status: status ?? 200 });
  };
  return { fetchImpl, requests };
}

const url = "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/gitlab";

describe("npm run webhooks, GitLab", () => {
  it("creates a Job-events hook with the secret token when the project has none", async () => {
    const api = fakeApi({
      "GET /api/v4/projects/42/hooks": () => ({ json: [{ id: 1, url: "https://elsewhere.example/hook" }] }),
      "POST /api/v4/projects/42/hooks": () => ({ status: 201, json: { id: 7, url } }),
    });
    const result = await syncGitLabHook({
      target: { forge: "gitlab", kind: "project", id: "42" },
      url,
      secret: "s3cret",
      apiBase: "https://gitlab.example.com/",
      apiToken: "glpat-x",
      fetch: api.fetchImpl,
    });
    expect(result).toMatchObject({ action: "created", hookId: 7, before: null });
    const created = api.requests.find((r) => r.method === "POST");
    expect(created?.headers["private-token"]).toBe("glpat-x");
    expect(created?.body).toMatchObject({ url, token: "s3cret", job_events: true, push_events: false });
  });

  it("updates the existing hook in place, and reports that GitLab disabled it", async () => {
    const api = fakeApi({
      "GET /api/v4/groups/acme%2Fplatform/hooks": () => ({
        json: [{ id: 9, url, alert_status: "temporarily_disabled", disabled_until: "2026-11-23T18:00:00Z" }],
      }),
      "PUT /api/v4/groups/acme%2Fplatform/hooks/9": () => ({ json: { id: 9, url } }),
    });
    const result = await syncGitLabHook({
      target: { forge: "gitlab", kind: "group", id: "acme/platform" },
      url,
      secret: "new-secret",
      apiBase: "https://gitlab.com",
      apiToken: "glpat-x",
      fetch: api.fetchImpl,
    });
    expect(result.action).toBe("updated");
    expect(result.before).toEqual({
      alert_status: "temporarily_disabled",
      disabled_until: "2026-11-23T18:00:00Z",
    });
    expect(result.report[0]).toBe(
      "existing hook 9: alert_status=temporarily_disabled, disabled_until=2026-11-23T18:00:00Z",
    );
    expect(result.report[1]).toMatch(/re-enable it with a test request/);
    expect(api.requests.filter((r) => r.method !== "GET").map((r) => r.method)).toEqual(["PUT"]);
  });

  it("reports a healthy hook without a warning", async () => {
    const api = fakeApi({
      "GET /api/v4/projects/42/hooks": () => ({
        json: [{ id: 3, url, alert_status: "executable", disabled_until: null }],
      }),
      "PUT /api/v4/projects/42/hooks/3": () => ({ json: { id: 3 } }),
    });
    const result = await syncGitLabHook({
      target: { forge: "gitlab", kind: "project", id: "42" },
      url,
      secret: "s",
      apiBase: "https://gitlab.com",
      apiToken: "t",
      fetch: api.fetchImpl,
    });
    expect(result.report).toEqual(["existing hook 3: alert_status=executable"]);
  });

  it("says what the API refused", async () => {
    const api = fakeApi({
      "GET /api/v4/projects/42/hooks": () => ({ status: 403, json: { message: "403 Forbidden" } }),
    });
    await expect(
      syncGitLabHook({
        target: { forge: "gitlab", kind: "project", id: "42" },
        url,
        secret: "s",
        apiBase: "https://gitlab.com",
        apiToken: "t",
        fetch: api.fetchImpl,
      }),
    ).rejects.toThrow('GET /api/v4/projects/42/hooks answered 403: "403 Forbidden"');
  });
});

describe("npm run webhooks, GitHub", () => {
  const hookUrl = "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/github";

  it("creates a workflow_job and workflow_run hook with the secret", async () => {
    const api = fakeApi({
      "GET /repos/acme/app/hooks": () => ({ json: [] }),
      "POST /repos/acme/app/hooks": () => ({ status: 201, json: { id: 11 } }),
    });
    const result = await syncGitHubHook({
      target: { forge: "github", kind: "repo", id: "acme/app" },
      url: hookUrl,
      secret: "gh-secret",
      apiBase: "https://api.github.com",
      apiToken: "ghp_x",
      fetch: api.fetchImpl,
    });
    expect(result).toMatchObject({ action: "created", hookId: 11 });
    const created = api.requests.find((r) => r.method === "POST");
    expect(created?.headers.authorization).toBe("Bearer ghp_x");
    expect(created?.body).toEqual({
      name: "web",
      active: true,
      events: ["workflow_job", "workflow_run"],
      config: { url: hookUrl, content_type: "json", secret: "gh-secret", insecure_ssl: "0" },
    });
  });

  it("updates an organization's existing hook, reporting its last delivery", async () => {
    const api = fakeApi({
      "GET /orgs/acme/hooks": () => ({
        json: [
          { id: 5, name: "web", active: true, events: ["push"], config: { url: "https://other.example" } },
          {
            id: 6,
            name: "web",
            active: false,
            events: ["workflow_job"],
            config: { url: hookUrl },
            last_response: { code: 401, status: "failed", message: "Invalid HTTP Response: 401" },
          },
        ],
      }),
      "PATCH /orgs/acme/hooks/6": () => ({ json: { id: 6 } }),
    });
    const result = await syncGitHubHook({
      target: { forge: "github", kind: "org", id: "acme" },
      url: hookUrl,
      secret: "rotated",
      apiBase: "https://api.github.com",
      apiToken: "ghp_x",
      fetch: api.fetchImpl,
    });
    expect(result.action).toBe("updated");
    expect(result.report).toEqual([
      "existing hook 6: active=false, last delivery failed (HTTP 401): Invalid HTTP Response: 401",
    ]);
    expect(api.requests.find((r) => r.method === "PATCH")?.body).toMatchObject({
      active: true,
      events: ["workflow_job", "workflow_run"],
    });
  });
});

describe("the stage's outputs", () => {
  it("are read from what sst deploy wrote, for the stage asked for only", () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-outputs-"));
    const file = join(dir, "outputs.json");
    writeFileSync(file, JSON.stringify({ stage: "production", gitlabWebhook: url }));
    expect(stageOutputs("production", file)?.gitlabWebhook).toBe(url);
    expect(() => stageOutputs("staging", file)).toThrow(/production's, not staging's/);
    expect(stageOutputs("staging", join(dir, "missing.json"))).toBeUndefined();
  });
});
