import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { heartbeatSchema } from "@hearth/core/instances";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createImdsClient } from "../src/aws/imds";
import { parseAgentFile, resolveAgentFile } from "../src/config";
import { productionAgent } from "../src/production";
import { systemctl } from "../src/system/systemctl";
import { RecordingLog } from "./support/fakes";
import { fakeServer } from "./support/http";
import { verifySigV4 } from "./support/sigv4";

const INSTANCE = "i-0123456789abcdef0";
const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const servers: Array<{ close(): Promise<void> }> = [];
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hearth-agent-prod-"));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await rm(dir, { recursive: true, force: true });
});

/**
 * The production composition end to end, every boundary faked where it meets the network or the
 * machine: IMDSv2, SSM and the control plane over loopback HTTP (each checking SigV4), systemctl as a
 * script. One heartbeat hands a config; the agent reads it from SSM, writes it for the slot's unit,
 * starts the unit and reports the runner listening.
 */
describe("the agent as it runs on an instance", () => {
  it("boots, heartbeats signed, and starts a slot's runner with the config handed to it", async () => {
    const parameter = `/hearth/test/runners/${INSTANCE}/1-30121`;
    const beats: unknown[] = [];
    const controlPlane = await fakeServer((request, res) => {
      const beat = JSON.parse(request.body);
      const signed = verifySigV4(request, secret);
      beats.push({ beat, signed, valid: heartbeatSchema.safeParse(beat).success });
      const reported = beat.slotRunners.some((r: { runnerId: number }) => r.runnerId === 30121);
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          status: "ok",
          protocol: 1,
          instance: INSTANCE,
          runner: beat.runner,
          instructions: {
            runnerConfigs: reported
              ? []
              : [{ slot: 1, runnerId: 30121, name: `hearth-${INSTANCE}-1`, parameter }],
            drain: false,
            cancel: [],
          },
        }),
      );
    });
    const imds = await fakeServer((request, res) => {
      if (request.method === "PUT") return void res.writeHead(200).end("t");
      const paths: Record<string, string> = {
        "/latest/meta-data/instance-id": INSTANCE,
        "/latest/meta-data/iam/security-credentials/": "hearth-test-default",
        "/latest/meta-data/iam/security-credentials/hearth-test-default": JSON.stringify({
          Code: "Success",
          AccessKeyId: "AKIAIOSFODNN7EXAMPLE",
          SecretAccessKey: secret,
          Token: "session-token",
          Expiration: "2099-01-01T00:00:00Z",
        }),
      };
      const value = paths[request.path];
      res.writeHead(value === undefined ? 404 : 200).end(value ?? "");
    });
    const values: Record<string, string> = {
      "/hearth/test/agent": JSON.stringify({
        heartbeatUrl: `${controlPlane.url}/agent/heartbeat`,
        binaryCache: "s3://cache?region=eu-west-1",
      }),
      "/hearth/test/pools/default/credentials": JSON.stringify({ gitlab: null }),
      [parameter]: "jit-secret-30121",
    };
    const ssm = await fakeServer((request, res) => {
      const value = verifySigV4(request, secret) ? values[JSON.parse(request.body).Name] : undefined;
      if (value === undefined)
        return void res.writeHead(400).end(JSON.stringify({ __type: "ParameterNotFound" }));
      res.writeHead(200).end(JSON.stringify({ Parameter: { Value: value } }));
    });
    servers.push(controlPlane, imds, ssm);
    const command = join(dir, "systemctl");
    await writeFile(command, `#!/bin/sh\necho "$*" >> "${dir}/calls"\n`);
    await chmod(command, 0o755);
    const file = resolveAgentFile(
      parseAgentFile(
        JSON.stringify({
          stage: "test",
          region: "eu-west-1",
          pool: "default",
          slots: 2,
          agentConfigParameter: "/hearth/test/agent",
          poolCredentialsParameter: "/hearth/test/pools/default/credentials",
          runnerConfigPrefix: "/hearth/test/runners/",
          stateDir: dir,
          runnerCommand: command,
          gitlabRunnerService: "gitlab-runner.service",
          gitlabSystemIdFile: join(dir, ".runner_system_id"),
          pushQueueDir: join(dir, "queue"),
          runnerConfigDir: join(dir, "runners"),
        }),
      ),
      null,
    );
    const log = new RecordingLog();
    const agent = await productionAgent(file, {
      imds: createImdsClient({ endpoint: imds.url }),
      ssmEndpoint: `${ssm.url}/`,
      systemctl: systemctl(command),
      log,
    });
    expect(await agent.heartbeatOnce()).toBe(true);
    expect(beats).toHaveLength(2);
    expect(beats.every((b) => (b as { signed: boolean; valid: boolean }).signed)).toBe(true);
    expect(beats.every((b) => (b as { valid: boolean }).valid)).toBe(true);
    expect((beats[1] as { beat: { slotRunners: unknown } }).beat.slotRunners).toEqual([
      { slot: 1, runnerId: 30121, state: "listening" },
    ]);
    const jitconfig = join(dir, "runners", "1", "jitconfig");
    expect(await readFile(jitconfig, "utf8")).toBe("jit-secret-30121");
    expect((await stat(jitconfig)).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, "calls"), "utf8")).toBe("start hearth-github-runner@1.service\n");
    expect(log.text).not.toContain("jit-secret");
  });
});
