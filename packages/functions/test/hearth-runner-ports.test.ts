import { poolConfigSchema } from "@hearth/core/pools";
import { describe, expect, it } from "vitest";
import { composeHearth, type HearthPorts } from "../src/hearth";

/** Runner identity's ports in the composition root: read when first used, and a missing App said. */

const pool = (name: string, github?: { organization: string }) =>
  poolConfigSchema.parse({
    name,
    labels: ["nix", name],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge"],
    ...(github ? { github } : {}),
  });

function compose(
  overrides: Partial<HearthPorts>,
  pools = [pool("x86", { organization: "acme" }), pool("gpu")],
) {
  const warnings: string[] = [];
  const reads: string[] = [];
  const hearth = composeHearth({
    store: () => ({ client: {} as never, tableName: "t", now: () => new Date() }),
    pools: () => pools,
    fleet: () => ({}) as never,
    gitlab: () => undefined,
    startScaleFleet: () => async () => {},
    holder: () => "h",
    background: async (task) => task(),
    log: {
      info() {},
      warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`),
      error() {},
    },
    now: () => new Date(),
    ...overrides,
    github: () => {
      reads.push("github");
      return overrides.github?.();
    },
    gitlabRunners: () => {
      reads.push("gitlabRunners");
      return overrides.gitlabRunners?.();
    },
  });
  return { hearth, warnings, reads };
}

describe("runner identity's ports", () => {
  it("are read only when used, once", () => {
    const { hearth, reads } = compose({});
    const runners = hearth.scaling.runners;
    expect(reads).toEqual([]);
    void runners?.github;
    void runners?.github;
    expect(reads).toEqual(["github"]);
    void runners?.gitlab;
    expect(reads).toEqual(["github", "gitlabRunners"]);
  });

  it("say once which pools' GitHub runners cannot be registered without credentials", () => {
    const { hearth, warnings } = compose({});
    void hearth.scaling.runners?.github;
    void hearth.scaling.runners?.github;
    expect(warnings).toEqual([expect.stringMatching(/no GitHub credentials.*"pools":"x86"/)]);
  });

  it("say nothing when no pool registers GitHub runners, or when credentials are there", () => {
    const without = compose({}, [pool("gpu")]);
    void without.hearth.scaling.runners?.github;
    const withApp = compose({ github: () => () => ({}) as never });
    void withApp.hearth.scaling.runners?.github;
    expect([...without.warnings, ...withApp.warnings]).toEqual([]);
  });
});
