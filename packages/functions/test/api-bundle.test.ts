import { resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { loadedAtInit } from "../bench/bundle";

/**
 * What the API Lambda loads at init, bundled as deployed (the AWS SDK from the runtime): no client it
 * needs only on first use (EC2, Auto Scaling, SSM, Step Functions), no GitLab API client (loaded at
 * the first tag lookup: most webhooks need none) and no GitHub App client (Octokit, its plugins and
 * JWT signing, loaded at the first GitHub call: most requests make none) and no minute tick (loaded by
 * the tick alone). Its cold start is measured by `bench:ingest`.
 */
describe("the API Lambda's bundle", () => {
  it("loads at init only what answering a request needs", async () => {
    const result = await build({
      entryPoints: { handler: resolve(import.meta.dirname, "../src/aws/handlers/api.ts") },
      outdir: "/virtual",
      write: false,
      splitting: true,
      metafile: true,
      bundle: true,
      minify: true,
      platform: "node",
      format: "esm",
      target: "node22",
      external: ["@aws-sdk/*", "@smithy/*"],
      logLevel: "error",
    });
    const outputs = result.metafile.outputs;
    const atInit = loadedAtInit(outputs, "handler.js");
    const inputs = [...atInit].flatMap((file) => Object.keys(outputs[file]?.inputs ?? {}));
    const imports = [...atInit].flatMap((file) =>
      (outputs[file]?.imports ?? []).filter((i) => i.kind === "import-statement").map((i) => i.path),
    );
    expect(inputs.filter((input) => input.includes("@gitbeaker"))).toEqual([]);
    expect(inputs.filter((input) => input.includes("scaling/tick"))).toEqual([]);
    expect(
      inputs.filter((input) =>
        /@octokit\/(core|auth-app|plugin-retry|plugin-throttling|request)\/|bottleneck|github-api\/client/.test(
          input,
        ),
      ),
    ).toEqual([]);
    expect(
      imports.filter((path) => /client-(ec2|auto-scaling|ssm|sfn)/.test(path) && !path.includes("dynamodb")),
    ).toEqual([]);
    const bytes = [...atInit].reduce((sum, file) => sum + (outputs[file]?.bytes ?? 0), 0);
    expect(bytes).toBeLessThan(300 * 1024);
  });
});
