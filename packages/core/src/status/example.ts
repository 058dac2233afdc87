import type { InstanceState, InstanceView, JobView, PoolStatus, Status, StatusEvent } from "./index";

/**
 * A consistent, realistic status document: two pools, one bursting onto spot after a queue spike
 * (with a spot interruption being drained), one quiet with a suspect instance, and a job no pool can
 * run. The pools' counts are derived from its instances and jobs, as the real builder must. It serves
 * the page's tests and its dev server; nothing in production reads it.
 */
export function exampleStatus(now: Date = new Date()): Status {
  const at = (secondsAgo: number) => new Date(now.getTime() - secondsAgo * 1000).toISOString();

  const x64 = { name: "linux-x64", labels: ["linux", "nix", "self-hosted", "x64"], architecture: "x86_64" };
  const arm = {
    name: "linux-arm64",
    labels: ["arm64", "linux", "nix", "self-hosted"],
    architecture: "arm64",
  };

  const instance = (
    id: string,
    pool: string,
    group: InstanceView["group"],
    state: InstanceState,
    rest: Partial<InstanceView> = {},
  ): InstanceView => ({
    id,
    pool,
    group,
    market: group === "warm" ? "on-demand" : "spot",
    instanceType: pool === arm.name ? "m7g.2xlarge" : group === "warm" ? "m7i.2xlarge" : "c7i.2xlarge",
    az: "eu-west-1a",
    state,
    busySlots: 0,
    slots: 2,
    uptimeSeconds: 0,
    warmCacheKeys: 0,
    lastHeartbeatSeconds: null,
    ...rest,
  });
  const instances: InstanceView[] = [
    instance("i-0a1b2c3d4e5f60001", x64.name, "warm", "busy", {
      busySlots: 2,
      uptimeSeconds: 11_520,
      warmCacheKeys: 41,
      lastHeartbeatSeconds: 3,
    }),
    instance("i-0a1b2c3d4e5f60002", x64.name, "warm", "busy", {
      az: "eu-west-1b",
      busySlots: 2,
      uptimeSeconds: 3_140,
      warmCacheKeys: 18,
      lastHeartbeatSeconds: 5,
    }),
    // Resumed from the warm pool a moment ago: warm store, no heartbeat yet.
    instance("i-0a1b2c3d4e5f60003", x64.name, "warm", "launching", {
      az: "eu-west-1c",
      uptimeSeconds: 25,
      warmCacheKeys: 29,
    }),
    instance("i-0a1b2c3d4e5f60004", x64.name, "warm", "stopped", { az: "eu-west-1b", warmCacheKeys: 37 }),
    instance("i-0a1b2c3d4e5f60005", x64.name, "warm", "stopped", { az: "eu-west-1c", warmCacheKeys: 22 }),
    instance("i-0f9e8d7c6b5a40001", x64.name, "burst", "busy", {
      az: "eu-west-1b",
      busySlots: 2,
      uptimeSeconds: 1_090,
      warmCacheKeys: 6,
      lastHeartbeatSeconds: 2,
    }),
    instance("i-0f9e8d7c6b5a40002", x64.name, "burst", "draining", {
      az: "eu-west-1c",
      busySlots: 1,
      uptimeSeconds: 2_460,
      warmCacheKeys: 11,
      lastHeartbeatSeconds: 4,
    }),
    instance("i-0f9e8d7c6b5a40003", x64.name, "burst", "launching", { uptimeSeconds: 40 }),
    instance("i-07aa5e1c2b3d40001", arm.name, "warm", "busy", {
      busySlots: 1,
      uptimeSeconds: 7_310,
      warmCacheKeys: 24,
      lastHeartbeatSeconds: 6,
    }),
    instance("i-07aa5e1c2b3d40002", arm.name, "warm", "ready", {
      az: "eu-west-1b",
      uptimeSeconds: 3_905,
      warmCacheKeys: 12,
      lastHeartbeatSeconds: 8,
    }),
    instance("i-07aa5e1c2b3d40003", arm.name, "warm", "suspect", {
      az: "eu-west-1c",
      uptimeSeconds: 18_020,
      warmCacheKeys: 30,
      lastHeartbeatSeconds: 190,
    }),
    instance("i-07aa5e1c2b3d40004", arm.name, "warm", "stopped", { warmCacheKeys: 19 }),
  ];

  const job = (rest: Partial<JobView> & Pick<JobView, "id" | "status">): JobView => ({
    source: "github",
    project: "acme/web",
    name: "build",
    labels: x64.labels,
    pool: x64.name,
    conclusion: null,
    instanceId: null,
    waitSeconds: null,
    runSeconds: null,
    url: rest.source === "gitlab" ? null : `https://github.com/acme/web/actions/runs/9100/job/${rest.id}`,
    queuedAt: null,
    ...rest,
  });
  const queuedJob = (id: string, waitSeconds: number, rest: Partial<JobView> = {}) =>
    job({ id, status: "queued", waitSeconds, queuedAt: at(waitSeconds), ...rest });
  const runningJob = (id: string, instanceId: string, runSeconds: number, rest: Partial<JobView> = {}) =>
    job({
      id,
      status: "running",
      instanceId,
      waitSeconds: 9,
      runSeconds,
      queuedAt: at(runSeconds + 9),
      ...rest,
    });

  const queued = [
    queuedJob("41877", 252, {
      source: "gitlab",
      project: "platform-infrastructure/terraform-modules-monorepo",
      name: "test: [nixpkgs-unstable, x86_64-linux, integration]",
      labels: ["nix", "x64"],
      url: "https://gitlab.example.com/platform-infrastructure/terraform-modules-monorepo/-/jobs/41877",
    }),
    queuedJob("28311904551", 131, { name: "test (unit, 3)" }),
    queuedJob("28311904552", 48, { name: "test (unit, 4)" }),
    queuedJob("28311906120", 12, { project: "acme/api", name: "lint" }),
  ];
  const running = [
    runningJob("28311903001", "i-0a1b2c3d4e5f60001", 1_460, { name: "build (x86_64-linux)" }),
    runningJob("28311903002", "i-0a1b2c3d4e5f60001", 388, { name: "test (unit, 1)" }),
    runningJob("41870", "i-0a1b2c3d4e5f60002", 702, {
      source: "gitlab",
      project: "platform/nix-infra",
      name: "deploy:staging",
      labels: ["nix", "x64"],
      url: "https://gitlab.example.com/platform/nix-infra/-/jobs/41870",
    }),
    runningJob("28311903050", "i-0a1b2c3d4e5f60002", 301, { name: "test (unit, 2)" }),
    runningJob("28311903101", "i-0f9e8d7c6b5a40001", 244, { project: "acme/api", name: "build" }),
    runningJob("28311903102", "i-0f9e8d7c6b5a40001", 97, { project: "acme/api", name: "test" }),
    // On the instance that got the interruption warning: it finishes if it can, or is retried.
    runningJob("28311902990", "i-0f9e8d7c6b5a40002", 915, { name: "e2e (chromium)" }),
    runningJob("28311903200", "i-07aa5e1c2b3d40001", 530, {
      project: "acme/mobile",
      name: "build (aarch64-linux)",
      labels: arm.labels,
      pool: arm.name,
    }),
  ];
  const unroutable = [
    queuedJob("28311899870", 610, {
      project: "acme/ml",
      name: "train (cuda)",
      labels: ["gpu", "linux", "self-hosted"],
      pool: null,
    }),
  ];
  const finishedJob = (id: string, ago: number, runSeconds: number, rest: Partial<JobView>) =>
    job({
      id,
      status: "completed",
      conclusion: "success",
      waitSeconds: 14,
      runSeconds,
      queuedAt: at(ago + runSeconds + 14),
      ...rest,
    });
  const finished = [
    finishedJob("28311902801", 30, 412, { name: "test (unit, 0)", instanceId: "i-0a1b2c3d4e5f60002" }),
    finishedJob("41866", 95, 1_210, {
      source: "gitlab",
      project: "platform/nix-infra",
      name: "plan",
      labels: ["nix", "x64"],
      conclusion: "failure",
      instanceId: "i-0a1b2c3d4e5f60001",
      url: "https://gitlab.example.com/platform/nix-infra/-/jobs/41866",
    }),
    finishedJob("28311902750", 180, 66, {
      project: "acme/api",
      name: "typecheck",
      instanceId: "i-0f9e8d7c6b5a40001",
    }),
    finishedJob("28311902700", 400, 35, {
      project: "acme/mobile",
      name: "lint",
      labels: arm.labels,
      pool: arm.name,
      instanceId: "i-07aa5e1c2b3d40001",
    }),
    finishedJob("28311902611", 620, 140, {
      name: "e2e (firefox)",
      status: "cancelled",
      conclusion: "cancelled",
      instanceId: "i-0f9e8d7c6b5a40002",
    }),
  ];

  const events: StatusEvent[] = [
    {
      time: at(20),
      pool: x64.name,
      kind: "decision",
      reason: "4 jobs queued and no free slot; 2 slots launching. Burst 2 → 3, resume 1 from the warm pool.",
      details: { queued: 4, freeSlots: 0, warmDesired: 3, burstDesired: 3 },
    },
    {
      time: at(190),
      pool: x64.name,
      kind: "interruption",
      reason: "Spot interruption warning for i-0f9e8d7c6b5a40002: draining it and replacing its capacity.",
      details: { instance: "i-0f9e8d7c6b5a40002", runningJobs: 1 },
    },
    {
      time: at(300),
      pool: null,
      kind: "sweep",
      reason: "Deregistered 1 GitHub runner whose instance no longer exists.",
      details: { staleRunners: 1, orphanInstances: 0, stuckJobs: 0 },
    },
    {
      time: at(540),
      pool: arm.name,
      kind: "decision",
      reason:
        "Idle for 15 minutes: warm 4 → 3. Released i-07aa5e1c2b3d40005, the coldest; the warm pool is full.",
      details: { released: "i-07aa5e1c2b3d40005", warmDesired: 3 },
    },
    {
      time: at(840),
      pool: x64.name,
      kind: "error",
      reason: "Could not remove scale-in protection from i-0f9e8d7c6b5a40004 (Throttling); will retry.",
    },
    {
      time: at(1_080),
      pool: x64.name,
      kind: "decision",
      reason: "Queue of 6 outgrew the warm group. Burst 0 → 2.",
      details: { queued: 6, freeSlots: 0, burstDesired: 2 },
    },
  ];

  const pools: PoolStatus[] = [
    poolStatus(x64, instances, queued, running, {
      warm: { desired: 3, actual: 3 },
      burst: { desired: 3, actual: 3 },
      warmPool: { target: 3, stopped: 2 },
      maxInstances: 12,
    }),
    poolStatus(arm, instances, [], running, {
      warm: { desired: 3, actual: 3 },
      burst: { desired: 0, actual: 0 },
      warmPool: { target: 1, stopped: 1 },
      maxInstances: 6,
    }),
  ];

  const minutes = 60;
  // A quiet hour, then a queue spike on linux-x64 that burst capacity catches up with.
  const x64Queued = [
    ...Array.from({ length: 40 }, (_, i) => [0, 0, 1, 2, 1, 0, 0, 0, 1, 0][i % 10] ?? 0),
    ...[1, 3, 5, 6, 8, 7, 6, 5, 4, 3, 2, 2, 1, 2, 3, 5, 6, 5, 4, 4],
  ];
  const x64Capacity = [
    ...Array.from({ length: 42 }, () => 4),
    ...[4, 4, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 10, 10, 10, 12],
  ];
  const x64Busy = [
    ...Array.from({ length: 40 }, (_, i) => [2, 3, 4, 3, 2, 1, 2, 3, 4, 2][i % 10] ?? 0),
    ...[4, 4, 4, 4, 6, 8, 8, 8, 8, 7, 6, 6, 5, 6, 8, 8, 8, 8, 7, 7],
  ];

  return {
    generatedAt: now.toISOString(),
    stage: "local",
    pools,
    unroutable: { count: unroutable.length, jobs: unroutable },
    instances,
    jobs: { queuedCount: queued.length, queued, next: null, running, finished },
    events,
    series: {
      stepSeconds: 60,
      start: at((minutes - 1) * 60),
      pools: {
        [x64.name]: { queued: x64Queued, capacity: x64Capacity, busy: x64Busy },
        [arm.name]: {
          queued: Array.from({ length: minutes }, (_, i) => (i % 13 === 5 ? 1 : 0)),
          capacity: Array.from({ length: minutes }, () => 6),
          busy: Array.from({ length: minutes }, (_, i) => [1, 2, 1, 1, 0, 2, 2, 1][i % 8] ?? 0),
        },
      },
    },
  };
}

function poolStatus(
  pool: { name: string; labels: string[]; architecture: string },
  instances: InstanceView[],
  queued: JobView[],
  running: JobView[],
  capacity: PoolStatus["capacity"] & { maxInstances: number },
): PoolStatus {
  const own = instances.filter((instance) => instance.pool === pool.name);
  const inState = (state: InstanceState) => own.filter((instance) => instance.state === state).length;
  const live = own.filter((instance) => instance.state !== "stopped");
  const waits = queued.filter((job) => job.pool === pool.name).map((job) => job.waitSeconds ?? 0);
  return {
    ...pool,
    capacity: { warm: capacity.warm, burst: capacity.burst, warmPool: capacity.warmPool },
    instances: {
      launching: inState("launching"),
      ready: inState("ready"),
      busy: inState("busy"),
      draining: inState("draining"),
      stopped: inState("stopped"),
      suspect: inState("suspect"),
    },
    slots: {
      total: live.reduce((sum, instance) => sum + instance.slots, 0),
      busy: live.reduce((sum, instance) => sum + instance.busySlots, 0),
    },
    queued: waits.length,
    running: running.filter((job) => job.pool === pool.name).length,
    oldestQueuedSeconds: waits.length ? Math.max(...waits) : null,
    maxInstances: capacity.maxInstances,
  };
}
