import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadHearthConfig, parseHearthConfig, readSettings, stageSettings } from "../src/config";
import { editDistance, nearestKey } from "../src/config/keys";

const pool = { name: "x86_64", labels: ["nix"], architecture: "x86_64", instanceTypes: ["c6a.xlarge"] };

const errorOf = (input: unknown): string => {
  try {
    parseHearthConfig(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("parsed without an error");
};

describe("hearth.config.json with a misspelled key", () => {
  it.each([
    [
      "maxInstance in a pool",
      { pools: [{ ...pool, maxInstance: 5 }] },
      'pools[0].maxInstance: unknown key "maxInstance"; did you mean "maxInstances"?',
    ],
    [
      "untaged in a pool",
      { pools: [{ ...pool, untaged: true }] },
      'pools[0].untaged: unknown key "untaged"; did you mean "untagged"?',
    ],
    [
      "warmSecs in a pool's idleTimeouts",
      { pools: [{ ...pool, idleTimeouts: { warmSecs: 10 } }] },
      'pools[0].idleTimeouts.warmSecs: unknown key "warmSecs"; did you mean "warmSeconds"?',
    ],
    ["pool at the top level", { pool: [pool] }, 'pool: unknown key "pool"; did you mean "pools"?'],
    [
      "a stage's fleet.rootVolume",
      { stages: { production: { fleet: { rootVolume: 200 } } } },
      'stages.production.fleet.rootVolume: unknown key "rootVolume"; did you mean "rootVolumeGiB"?',
    ],
    [
      "an alarm threshold cut short",
      { alarms: { thresholds: { oldestQueued: 600 } } },
      'alarms.thresholds.oldestQueued: unknown key "oldestQueued"; did you mean "oldestQueuedSeconds"?',
    ],
    [
      "a key like no other in a pool's second entry",
      { pools: [pool, { ...pool, name: "b", colour: "red" }] },
      'pools[1].colour: unknown key "colour"; known keys: "name", "labels", "architecture"',
    ],
  ])("refuses %s, naming its path and the key meant", (_, input, message) => {
    expect(errorOf(input)).toContain(`hearth.config.json: ${message}`);
  });

  it("lists every mistake, one line each", () => {
    const message = errorOf({ pools: [{ ...pool, maxInstance: 5, untaged: true }], alarm: {} });
    expect(message.split("\n")).toEqual([
      "hearth.config.json:",
      '  pools[0].maxInstance: unknown key "maxInstance"; did you mean "maxInstances"?',
      '  pools[0].untaged: unknown key "untaged"; did you mean "untagged"?',
      '  alarm: unknown key "alarm"; did you mean "alarms"?',
    ]);
  });

  it("is refused when read from a file, as local mode and the deploy read it", () => {
    const path = join(mkdtempSync(join(tmpdir(), "hearth-config-")), "hearth.config.json");
    writeFileSync(path, JSON.stringify({ pools: [{ ...pool, idleTimeouts: { warmSecs: 10 } }] }));
    expect(() => loadHearthConfig(path)).toThrow(
      `${path}: pools[0].idleTimeouts.warmSecs: unknown key "warmSecs"; did you mean "warmSeconds"?`,
    );
  });

  it("still takes every documented key", () => {
    const config = parseHearthConfig({
      pools: [
        {
          ...pool,
          slotsPerInstance: 2,
          warm: { warmPoolSize: 10, minReady: 1 },
          burst: { spotShare: 0.5, onDemandFallback: false },
          maxInstances: 5,
          idleTimeouts: { warmSeconds: 10, burstSeconds: 60 },
          ami: "ami-0123456789abcdef0",
          boot: { coldSeconds: 70, warmSeconds: 20 },
          untagged: true,
          default: true,
          autoScalingGroups: { warm: "ci-warm", burst: "ci-burst" },
        },
      ],
      gitlab: { url: "https://gitlab.example.com" },
      alarms: { email: "ops@example.com", thresholds: { oldestQueuedSeconds: 600 } },
      fleet: { rootVolumeGiB: 200, rootVolumeGiBByPool: { x86_64: 300 } },
      stages: { production: { fleet: { rootVolumeGiB: 400 } } },
    });
    expect(config.pools?.[0]?.idleTimeouts).toEqual({ warmSeconds: 10, burstSeconds: 60 });
    expect(config.pools?.[0]?.default).toBe(true);
  });
});

describe("nearestKey", () => {
  it("measures edits and suggests only near keys", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(nearestKey("MAXINSTANCES", ["maxInstances", "minReady"])).toBe("maxInstances");
    expect(nearestKey("colour", ["name", "labels"])).toBeUndefined();
  });
});

describe("readSettings", () => {
  it("takes a signing token the Standard Webhooks reference implementation can use, and no other", () => {
    const key = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
    expect(readSettings({ GITLAB_SIGNING_TOKEN: key }).GITLAB_SIGNING_TOKEN).toBe(key);
    for (const bad of ["not-whsec", "whsec_abc", "whsec_===="]) {
      expect(() => readSettings({ GITLAB_SIGNING_TOKEN: bad })).toThrow(
        "GITLAB_SIGNING_TOKEN: GITLAB_SIGNING_TOKEN must look like whsec_<base64>, as GitLab shows it",
      );
    }
  });
});

describe("GitHub's API URL", () => {
  it("is api.github.com unless a stage names a GitHub Enterprise Server's", () => {
    expect(stageSettings(parseHearthConfig({}), "dev").github).toEqual({ apiUrl: "https://api.github.com" });
    const config = parseHearthConfig({
      github: { apiUrl: "https://github.example.com/api/v3/" },
      stages: { sandbox: { github: {} } },
    });
    expect(stageSettings(config, "production").github.apiUrl).toBe("https://github.example.com/api/v3");
    expect(stageSettings(config, "sandbox").github.apiUrl).toBe("https://api.github.com");
  });

  it("must be an http(s) URL, in the file and in GITHUB_API_URL", () => {
    expect(errorOf({ github: { apiUrl: "github.example.com" } })).toMatch(/github\.apiUrl/);
    expect(errorOf({ github: { url: "https://github.example.com" } })).toMatch(/unknown key "url"/);
    expect(() => readSettings({ GITHUB_API_URL: "ftp://github.example.com" })).toThrow(/GITHUB_API_URL/);
    expect(readSettings({ GITHUB_API_URL: "https://github.example.com/api/v3" }).GITHUB_API_URL).toBe(
      "https://github.example.com/api/v3",
    );
    expect(readSettings({}).GITHUB_API_URL).toBeUndefined();
  });
});

describe("reconciliation", () => {
  it("polls every minute and sweeps every five, within a tenth of each token's budget, unless set", () => {
    expect(stageSettings(parseHearthConfig({}), "dev").reconciliation).toEqual({
      pollMinutes: 1,
      sweepMinutes: 5,
      budgetShare: 0.1,
      dryRun: false,
    });
    const config = parseHearthConfig({
      reconciliation: { sweepMinutes: 10 },
      stages: { production: { reconciliation: { dryRun: true } } },
    });
    expect(stageSettings(config, "dev").reconciliation.sweepMinutes).toBe(10);
    expect(stageSettings(config, "production").reconciliation).toMatchObject({
      sweepMinutes: 5,
      dryRun: true,
    });
  });

  it("refuses a share of the budget polling could exhaust, and misspelled keys", () => {
    expect(errorOf({ reconciliation: { budgetShare: 0.9 } })).toMatch(/reconciliation\.budgetShare/);
    expect(errorOf({ reconciliation: { pollMinutes: 0 } })).toMatch(/reconciliation\.pollMinutes/);
    expect(errorOf({ reconciliation: { dryrun: true } })).toMatch(/did you mean "dryRun"/);
  });
});

describe("config errors", () => {
  it("are one type, whether the file or the environment is wrong", () => {
    const caught = (read: () => unknown) => {
      try {
        read();
      } catch (error) {
        return error;
      }
      throw new Error("no error");
    };
    const fromFile = caught(() => parseHearthConfig({ pool: [] }));
    const fromEnvironment = caught(() => readSettings({ GITLAB_URL: "ftp://gitlab.example.com" }));
    for (const error of [fromFile, fromEnvironment]) {
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code: "invalid_config" });
    }
  });
});
