import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stand-in for the GitLab REST API at the HTTP boundary: `GET /api/v4/projects/:id/jobs/:job_id`
 * answers with the job's `tag_list`, as GitLab does, once `hold` (if given) resolves.
 */
export interface FakeGitLab {
  url: string;
  requests: Array<{ path: string; token: string | undefined }>;
  close(): Promise<void>;
}

export async function startFakeGitLab(options: {
  tags: Record<string, string[]>;
  hold?: Promise<void>;
  status?: number;
}): Promise<FakeGitLab> {
  const requests: FakeGitLab["requests"] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? "";
    requests.push({ path, token: req.headers["private-token"] as string | undefined });
    const match = /^\/api\/v4\/projects\/(\d+)\/jobs\/(\d+)$/.exec(path);
    void (options.hold ?? Promise.resolve()).then(() => {
      res.setHeader("content-type", "application/json");
      if (options.status && options.status !== 200) {
        res.writeHead(options.status).end(JSON.stringify({ message: "500 Internal Server Error" }));
        return;
      }
      const tags = match ? options.tags[match[2] ?? ""] : undefined;
      if (!tags) {
        res.writeHead(404).end(JSON.stringify({ message: "404 Not found" }));
        return;
      }
      res.writeHead(200).end(
        JSON.stringify({
          id: Number(match?.[2]),
          status: "pending",
          stage: "test",
          name: "test",
          tag_list: tags,
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
