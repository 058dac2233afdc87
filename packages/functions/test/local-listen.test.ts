import { Agent, request } from "node:http";
import { describe, expect, it } from "vitest";
import { listen } from "../src/local/listen";

/** One GET on `agent`'s kept-alive connections; resolves with the status, or null if refused. */
function get(url: string, agent: Agent): Promise<{ status: number; connection: string | undefined } | null> {
  return new Promise((resolve) => {
    const req = request(url, { agent }, (response) => {
      response.resume();
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, connection: response.headers.connection }),
      );
    });
    req.on("error", () => resolve(null));
    req.end();
  });
}

describe("the local server, closing", () => {
  // A client sending back to back on a kept-alive connection once held a clean stop open for as long
  // as it sent (Ctrl-C under webhook traffic did not exit).
  it("ends while a client keeps sending on a kept-alive connection", { timeout: 30_000 }, async () => {
    const listening = await listen(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return new Response("ok");
      },
      "127.0.0.1",
      0,
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const answers: Array<{ status: number; connection: string | undefined } | null> = [];
    let sending = true;
    const traffic = (async () => {
      while (sending) answers.push(await get(`${listening.url}/`, agent));
    })();
    while (answers.length < 5) await new Promise((resolve) => setTimeout(resolve, 10));

    await listening.close();
    sending = false;
    await traffic;
    agent.destroy();

    // Requests before the close were answered on one kept-alive connection. The request in flight
    // when the server closed was answered with `Connection: close`, or, if the connection was idle
    // at that moment and so closed at once, refused; and new connections are refused.
    expect(answers.slice(0, 5).every((answer) => answer?.status === 200)).toBe(true);
    const last = answers.at(-1);
    expect(last === null || last?.connection === "close").toBe(true);
    expect(await get(`${listening.url}/`, new Agent())).toBeNull();
  });
});
