import { heartbeatSchema } from "@hearth/core/instances";
import { afterEach, describe, expect, it } from "vitest";
import { identifyBySts } from "../../functions/src/agent/sts-identity";
import { createControlPlane } from "../src/aws/control-plane";
import { createImdsClient } from "../src/aws/imds";
import { executeApiRegion } from "../src/aws/sign";
import { createSsmParameters } from "../src/aws/ssm";
import type { HeartbeatBody } from "../src/ports";
import { fakeServer } from "./support/http";
import { parseAuthorization, type Received, verifySigV4 } from "./support/sigv4";

const credentials = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  sessionToken: "IQoJb3JpZ2luX2VjEXAMPLETOKEN",
};

const beat: HeartbeatBody = {
  protocol: 1,
  instanceId: "i-0123456789abcdef0",
  runner: "ready",
  slots: 2,
  runningJobs: [],
  cacheKeys: [],
  storeBytes: null,
  interruption: null,
  slotRunners: [],
  gitlabManager: null,
  freeDiskBytes: null,
  pushQueueDepth: null,
  pushLagSeconds: null,
  stoppedRunners: [],
  claiming: true,
};

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe("the heartbeat, signed with the instance role", () => {
  it("is SigV4 for execute-api, verifiable with the same credentials and no other", async () => {
    const server = await fakeServer((_request, res) => {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "ok", protocol: 1, instance: beat.instanceId, runner: "ready" }));
    });
    servers.push(server);
    const controlPlane = createControlPlane({
      heartbeatUrl: `${server.url}/agent/heartbeat`,
      region: "eu-west-1",
      credentials: async () => credentials,
    });
    const answer = await controlPlane.heartbeat(beat);
    expect(answer).toEqual({
      status: 200,
      body: { status: "ok", protocol: 1, instance: beat.instanceId, runner: "ready" },
    });
    const request = server.requests[0] as Received;
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/agent/heartbeat");
    expect(heartbeatSchema.safeParse(JSON.parse(request.body)).success).toBe(true);
    const auth = parseAuthorization(request.headers.authorization as string);
    expect(auth).toMatchObject({
      accessKeyId: credentials.accessKeyId,
      region: "eu-west-1",
      service: "execute-api",
    });
    expect(auth?.signedHeaders).toEqual(
      expect.arrayContaining([
        "content-type",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-hearth-identity",
      ]),
    );
    expect(request.headers["x-amz-security-token"]).toBe(credentials.sessionToken);
    expect(verifySigV4(request, credentials.secretAccessKey)).toBe(true);
    expect(verifySigV4(request, "another secret")).toBe(false);
    expect(
      verifySigV4(
        { ...request, body: request.body.replace('"ready"', '"busy"') },
        credentials.secretAccessKey,
      ),
    ).toBe(false);
  });

  it("carries a signed GetCallerIdentity that a single-host controller's identifyBySts accepts", async () => {
    const server = await fakeServer((_request, res) => void res.writeHead(200).end("{}"));
    servers.push(server);
    await createControlPlane({
      heartbeatUrl: `${server.url}/agent/heartbeat`,
      region: "eu-west-1",
      credentials: async () => credentials,
    }).heartbeat(beat);
    const identity = server.requests[0]?.headers["x-hearth-identity"] as string;
    const stsCalls: Received[] = [];
    // STS at the HTTP boundary: it answers only a request whose signature verifies.
    const fakeSts: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      const request: Received = {
        method: init?.method ?? "GET",
        path: url.pathname,
        headers: { ...(init?.headers as Record<string, string>), host: url.host },
        body: String(init?.body),
      };
      stsCalls.push(request);
      if (!verifySigV4(request, credentials.secretAccessKey))
        return new Response("<Error/>", { status: 403 });
      return new Response(
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/hearth-test-default/i-0123456789abcdef0</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>",
      );
    };
    expect(await identifyBySts(identity, { account: "123456789012", fetch: fakeSts })).toBe(
      "i-0123456789abcdef0",
    );
    expect(parseAuthorization(stsCalls[0]?.headers.authorization as string)).toMatchObject({
      service: "sts",
    });
    expect(stsCalls[0]?.path).toBe("/");
  });

  it("signs for the region an API Gateway URL names", () => {
    expect(executeApiRegion("https://abc123.execute-api.us-east-2.amazonaws.com/agent/heartbeat")).toBe(
      "us-east-2",
    );
    expect(executeApiRegion("https://hearth.example.com/agent/heartbeat")).toBeUndefined();
  });

  it("gives the refusal's status and body, and throws when nothing answers", async () => {
    const server = await fakeServer((_request, res) => {
      res
        .writeHead(403, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { code: "unknown_instance", message: "not part of the fleet" } }));
    });
    servers.push(server);
    const refused = await createControlPlane({
      heartbeatUrl: `${server.url}/agent/heartbeat`,
      region: "eu-west-1",
      credentials: async () => credentials,
    }).heartbeat(beat);
    expect(refused).toEqual({
      status: 403,
      body: { error: { code: "unknown_instance", message: "not part of the fleet" } },
    });
    await server.close();
    servers.pop();
    await expect(
      createControlPlane({
        heartbeatUrl: `${server.url}/agent/heartbeat`,
        region: "eu-west-1",
        credentials: async () => credentials,
      }).heartbeat(beat),
    ).rejects.toThrow();
  });
});

/** IMDSv2 at the HTTP boundary: a session token first, then reads that carry it. */
async function fakeImds() {
  const state = {
    tokens: new Set<string>(),
    issued: 0,
    paths: new Map<string, string>([
      ["/latest/meta-data/instance-id", "i-0123456789abcdef0"],
      ["/latest/meta-data/placement/region", "eu-west-1"],
      ["/latest/meta-data/iam/security-credentials/", "hearth-test-default\n"],
      [
        "/latest/meta-data/iam/security-credentials/hearth-test-default",
        JSON.stringify({
          Code: "Success",
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          Token: credentials.sessionToken,
          Expiration: "2099-01-01T00:00:00Z",
        }),
      ],
    ]),
  };
  const server = await fakeServer((request, res) => {
    if (request.method === "PUT" && request.path === "/latest/api/token") {
      if (!request.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return void res.writeHead(400).end();
      const token = `token-${++state.issued}`;
      state.tokens.add(token);
      return void res.writeHead(200).end(token);
    }
    if (!state.tokens.has(String(request.headers["x-aws-ec2-metadata-token"]))) {
      return void res.writeHead(401).end();
    }
    const value = state.paths.get(request.path);
    if (value === undefined) return void res.writeHead(404).end();
    res.writeHead(200).end(value);
  });
  servers.push(server);
  return { server, state };
}

describe("the IMDSv2 client", () => {
  it("reads identity and spot notices with a session token, and gets a new token once refused", async () => {
    const { server, state } = await fakeImds();
    const imds = createImdsClient({ endpoint: server.url });
    expect(await imds.instanceId()).toBe("i-0123456789abcdef0");
    expect(await imds.region()).toBe("eu-west-1");
    expect(await imds.spotAction()).toBeNull();
    expect(await imds.rebalanceRecommendation()).toBeNull();
    expect(state.issued).toBe(1);
    state.paths.set(
      "/latest/meta-data/spot/instance-action",
      JSON.stringify({ action: "terminate", time: "2026-03-02T10:02:00Z" }),
    );
    state.paths.set(
      "/latest/meta-data/events/recommendations/rebalance",
      JSON.stringify({ noticeTime: "2026-03-02T09:58:00Z" }),
    );
    // The token is revoked: one new token, and the read succeeds.
    state.tokens.clear();
    expect(await imds.spotAction()).toEqual({ action: "terminate", time: "2026-03-02T10:02:00.000Z" });
    expect(state.issued).toBe(2);
    expect(await imds.rebalanceRecommendation()).toEqual({ noticeTime: "2026-03-02T09:58:00.000Z" });
    expect(await imds.credentials()).toMatchObject({
      accessKeyId: credentials.accessKeyId,
      sessionToken: credentials.sessionToken,
    });
    // Every read carried a token.
    expect(
      server.requests.filter((r) => r.method === "GET").every((r) => r.headers["x-aws-ec2-metadata-token"]),
    ).toBe(true);
  });

  it("refuses a notice it cannot read rather than guessing", async () => {
    const { server, state } = await fakeImds();
    state.paths.set(
      "/latest/meta-data/spot/instance-action",
      JSON.stringify({ action: "explode", time: "x" }),
    );
    await expect(createImdsClient({ endpoint: server.url }).spotAction()).rejects.toThrow(/no known action/);
  });
});

describe("SSM GetParameter", () => {
  async function fakeSsm(values: Map<string, string>) {
    const server = await fakeServer((request, res) => {
      if (!verifySigV4(request, credentials.secretAccessKey)) {
        return void res.writeHead(403).end(JSON.stringify({ __type: "InvalidSignatureException" }));
      }
      if (request.headers["x-amz-target"] !== "AmazonSSM.GetParameter") return void res.writeHead(400).end();
      const { Name, WithDecryption } = JSON.parse(request.body);
      const value = values.get(Name);
      if (value === undefined || WithDecryption !== true) {
        return void res.writeHead(400).end(JSON.stringify({ __type: "ParameterNotFound" }));
      }
      res.writeHead(200).end(JSON.stringify({ Parameter: { Name, Type: "SecureString", Value: value } }));
    });
    servers.push(server);
    return server;
  }

  it("reads a value signed for ssm, and says null for ParameterNotFound", async () => {
    const server = await fakeSsm(new Map([["/hearth/test/runners/i-0123456789abcdef0/0-1", "jit-secret"]]));
    const ssm = createSsmParameters({
      region: "eu-west-1",
      credentials: async () => credentials,
      endpoint: `${server.url}/`,
    });
    expect(await ssm.get("/hearth/test/runners/i-0123456789abcdef0/0-1")).toBe("jit-secret");
    expect(await ssm.get("/hearth/test/runners/i-0123456789abcdef0/1-2")).toBeNull();
    expect(parseAuthorization(server.requests[0]?.headers.authorization as string)).toMatchObject({
      service: "ssm",
      region: "eu-west-1",
    });
  });

  it("throws on any other error, naming the parameter and never a value", async () => {
    const server = await fakeSsm(new Map([["/p", "jit-secret"]]));
    const ssm = createSsmParameters({
      region: "eu-west-1",
      credentials: async () => ({ ...credentials, secretAccessKey: "wrong" }),
      endpoint: `${server.url}/`,
    });
    await expect(ssm.get("/p")).rejects.toThrow("SSM GetParameter /p failed: 403 InvalidSignatureException");
  });
});
