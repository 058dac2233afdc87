import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import Ajv, { type ValidateFunction } from "ajv";

/**
 * A stateful fake of the GitHub REST API, held to GitHub's official OpenAPI description
 * (`@octokit/openapi`, api.github.com). Every request must match a described operation (path
 * template and method) and its request body must validate against the described schema; every
 * answer is validated against the described response schema for its status. A mismatch is recorded
 * in `violations` and answered with a 599, so the test that caused it fails loudly.
 *
 * It keeps installations of one GitHub App (verifying the App's RS256 JWTs against its public key),
 * installation tokens (with expiry and revocation), personal access tokens, self-hosted runners per
 * repository or organization, rate-limit headers (a fixed window per bucket, as GitHub counts), the
 * App's webhook deliveries (listed newest first with a cursor; a redelivery is a new delivery of the
 * same guid), workflow runs with their jobs (listed by status, paged), and injected secondary rate
 * limits, 429s, 5xx and truncated list pages.
 *
 * GitHub answers some statuses on every operation without describing them per operation (401 bad
 * credentials, 403/429 rate limits, 5xx): those are validated against `basic-error`.
 */

type Json = Record<string, unknown>;

export interface Operation {
  template: string;
  method: string;
  pattern: RegExp;
  params: string[];
  literalSegments: number;
  pointer: string;
  spec: Json;
}

const require = createRequire(import.meta.url);
let loaded: { doc: Json; ajv: Ajv; operations: Operation[] } | undefined;
const validators = new Map<string, ValidateFunction>();

/** JSON pointer (RFC 6901) as a URI fragment. */
const pointerOf = (...segments: string[]) =>
  segments.map((segment) => encodeURIComponent(segment.replace(/~/g, "~0").replace(/\//g, "~1"))).join("/");

function description() {
  if (loaded) return loaded;
  const doc = JSON.parse(
    readFileSync(require.resolve("@octokit/openapi/generated/api.github.com.json"), "utf8"),
  ) as Json;
  jsonSchemaNullable(doc);
  // `example`, `x-github` and the like are not validation keywords, and formats are GitHub's
  // documentation, not constraints the fake enforces.
  const ajv = new Ajv({ strict: false, validateFormats: false, validateSchema: false, allErrors: true });
  ajv.addSchema({ paths: doc.paths, components: doc.components }, "github");
  const operations: Operation[] = [];
  for (const [template, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const [method, spec] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const params: string[] = [];
      const source = template
        .split("/")
        .map((segment) =>
          segment.replace(/\{(\w+)\}|[^{}]+/g, (whole, name?: string) => {
            if (name) {
              params.push(name);
              return "([^/]+)";
            }
            return whole.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
          }),
        )
        .join("/");
      operations.push({
        template,
        method: method.toUpperCase(),
        pattern: new RegExp(`^${source}$`),
        params,
        literalSegments: template.split("/").filter((segment) => segment && !segment.includes("{")).length,
        pointer: pointerOf("paths", template, method),
        spec: spec as Json,
      });
    }
  }
  // The most literal template wins: `…/runners/generate-jitconfig` before `…/runners/{runner_id}`.
  operations.sort((a, b) => b.literalSegments - a.literalSegments);
  loaded = { doc, ajv, operations };
  return loaded;
}

/**
 * OpenAPI 3.0's `nullable: true` as JSON Schema: a `null` type, value or alternative. GitHub's
 * description also puts it beside `allOf`/`$ref` without a `type`, which Ajv's own support refuses.
 */
function jsonSchemaNullable(node: unknown, names = false): unknown {
  if (Array.isArray(node)) {
    for (const [index, item] of node.entries()) node[index] = jsonSchemaNullable(item);
    return node;
  }
  if (node === null || typeof node !== "object") return node;
  const object = node as Json;
  for (const [key, value] of Object.entries(object)) {
    // Examples and defaults are data, not schemas; under `properties` every key is a name, though.
    if (!names && ["example", "examples", "default"].includes(key)) continue;
    object[key] = jsonSchemaNullable(value, key === "properties" && !names);
  }
  if (object.nullable !== true) return object;
  delete object.nullable;
  if (typeof object.type === "string") {
    object.type = [object.type, "null"];
    if (Array.isArray(object.enum) && !object.enum.includes(null)) object.enum.push(null);
    return object;
  }
  return { anyOf: [object, { type: "null" }] };
}

/** Follows a `$ref` within the description. */
function resolve(value: Json): { node: Json; pointer?: string } {
  const ref = value.$ref;
  if (typeof ref !== "string") return { node: value };
  const path = ref.replace(/^#\//, "").split("/");
  let node: unknown = description().doc;
  for (const segment of path) node = (node as Json)[segment.replace(/~1/g, "/").replace(/~0/g, "~")];
  return { node: node as Json, pointer: pointerOf(...path) };
}

function validator(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    validate = description().ajv.compile({ $ref: `github#/${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

const errorsOf = (validate: ValidateFunction) =>
  (validate.errors ?? [])
    .slice(0, 5)
    .map((error) => `${error.instancePath || "/"} ${error.message}`)
    .join("; ");

/** The described operation a request's method and path (without the base URL's) match, if any. */
export function describedOperation(
  method: string,
  path: string,
): { operation: Operation; params: Record<string, string> } | undefined {
  const operation = description().operations.find((op) => op.method === method && op.pattern.test(path));
  if (!operation) return undefined;
  const params = Object.fromEntries(
    operation.params.map((name, index) => [
      name,
      decodeURIComponent(operation.pattern.exec(path)?.[index + 1] ?? ""),
    ]),
  );
  return { operation, params };
}

/** Why a request body does not fit the operation's described request body, or undefined if it does. */
export function requestBodyProblem(operation: Operation, body: unknown): string | undefined {
  const requestBody = operation.spec.requestBody
    ? resolve(operation.spec.requestBody as Json).node
    : undefined;
  if (requestBody) {
    if (body === undefined && requestBody.required === true) return "the operation requires a body";
    if (body !== undefined) {
      const validate = validator(
        `${operation.pointer}/requestBody/${pointerOf("content", "application/json", "schema")}`,
      );
      if (!validate(body)) return `the body does not match the described schema: ${errorsOf(validate)}`;
    }
  } else if (body !== undefined && Object.keys(body as Json).length > 0) {
    return "the operation takes no body";
  }
  return undefined;
}

/**
 * Why an answer does not fit the operation's described response for its status, or undefined if it
 * does. Statuses GitHub answers on every operation without describing them per operation (400 for a
 * body that is not JSON, 401, 403, 404, 429, 5xx) are held to `basic-error`.
 */
export function responseProblem(operation: Operation, status: number, body: unknown): string | undefined {
  const described = (operation.spec.responses as Json)[String(status)] as Json | undefined;
  let schemaPointer: string | undefined;
  if (described) {
    const { node, pointer } = resolve(described);
    const base = pointer ?? `${operation.pointer}/${pointerOf("responses", String(status))}`;
    if ((node.content as Json | undefined)?.["application/json"]) {
      schemaPointer = `${base}/${pointerOf("content", "application/json", "schema")}`;
    } else if (body !== undefined) {
      return `status ${status} is described without a body`;
    }
  } else if ([400, 401, 403, 404, 429, 500, 502, 503].includes(status)) {
    schemaPointer = pointerOf("components", "schemas", "basic-error");
  } else {
    return `status ${status} is not described for this operation`;
  }
  if (schemaPointer) {
    const validate = validator(schemaPointer);
    if (!validate(body)) return `the answer does not match the schema: ${errorsOf(validate)}`;
  }
  return undefined;
}

export interface FakeRunner {
  id: number;
  name: string;
  labels: string[];
  runnerGroupId: number;
  busy: boolean;
  /** Connected to GitHub (an agent runs it); offline by default. */
  online?: boolean;
  /** The config minted for it; tests compare it with what the client returned. */
  encodedJitConfig: string;
}

export interface RecordedRequest {
  method: string;
  /** The full path as received, base-URL prefix included, without the query. */
  path: string;
  query: string;
  /** The described template it matched, e.g. `/repos/{owner}/{repo}/actions/runners`. */
  template?: string;
  status: number;
}

interface Injection {
  count: number;
  matches: (method: string, template: string) => boolean;
}

export interface FakeDelivery {
  id: number;
  guid: string;
  deliveredAt: number;
  redelivery: boolean;
  statusCode: number;
  event: string;
  action: string | null;
  repositoryId: number | null;
  /** The webhook's body, as `GET /app/hook/deliveries/{id}` shows it; null when GitHub kept none. */
  payload: Json | null;
}

/** A delivery as `GET /app/hook/deliveries` lists it (hook-delivery-item). */
function deliveryItem(item: FakeDelivery) {
  return {
    id: item.id,
    guid: item.guid,
    delivered_at: new Date(item.deliveredAt).toISOString(),
    redelivery: item.redelivery,
    duration: 0.2,
    status:
      item.statusCode === 0
        ? "timed out"
        : item.statusCode < 400
          ? "OK"
          : `Invalid HTTP Response: ${item.statusCode}`,
    status_code: item.statusCode,
    event: item.event,
    action: item.action,
    installation_id: null,
    repository_id: item.repositoryId,
    throttled_at: null,
  };
}

export interface FakeJob {
  id: number;
  name: string;
  status: "queued" | "in_progress" | "completed" | "waiting";
  conclusion: string | null;
  labels: string[];
  runnerName: string | null;
  createdAt: number;
}

export interface FakeRun {
  id: number;
  repository: string;
  status: "queued" | "in_progress" | "completed";
  attempt: number;
  jobs: FakeJob[];
}

export interface FakeGitHubOptions {
  /** `/api/v3` to stand for GitHub Enterprise Server; api.github.com has none. */
  pathPrefix?: string;
  appId?: number;
  /** Installation token lifetime; GitHub gives an hour. */
  tokenLifetimeSeconds?: number;
  /** Calls per token per hour, for the `x-ratelimit-*` headers. */
  rateLimit?: number;
  now?: () => number;
}

export class FakeGitHub {
  readonly appId: number;
  /** The App's private key (PKCS#8 PEM), as a stage secret would hold it. */
  readonly privateKey: string;
  readonly violations: string[] = [];
  readonly requests: RecordedRequest[] = [];
  /** Personal access tokens GitHub accepts, each for the owners it may act on. */
  readonly personalAccessTokens = new Map<string, string[]>();
  private publicKey;
  private keyRevoked = false;
  private readonly installations = new Map<number, string>();
  private readonly tokens = new Map<
    string,
    { installationId: number; expiresAt: number; revoked: boolean }
  >();
  private readonly runners = new Map<string, Map<number, FakeRunner>>();
  private readonly used = new Map<string, { count: number; resetAt: number }>();
  private readonly secondaryLimits: (Injection & { retryAfterSeconds: number; status: 403 | 429 })[] = [];
  private readonly serverErrors: Injection[] = [];
  private readonly truncations: Injection[] = [];
  /** The App's webhook deliveries, oldest first. */
  readonly deliveries: FakeDelivery[] = [];
  /** Deliveries asked to be delivered again, by id, in order. */
  readonly redeliveryRequests: number[] = [];
  /** Deliveries whose payload was read, by id, in order. */
  readonly deliveryReads: number[] = [];
  /** The status code Hearth's endpoint answers a redelivery with (GitHub records it). */
  redeliveryStatusCode = 202;
  private readonly runs: FakeRun[] = [];
  private nextDeliveryId = 7_000_000;
  private nextRunId = 900_000;
  private nextJobId = 50_000_000;
  private nextRunnerId = 100;
  private readonly server: Server;
  private readonly prefix: string;
  private readonly tokenLifetimeMs: number;
  private readonly rateLimit: number;
  readonly now: () => number;
  baseUrl = "";

  constructor(options: FakeGitHubOptions = {}) {
    this.prefix = options.pathPrefix ?? "";
    this.appId = options.appId ?? 4242;
    this.tokenLifetimeMs = (options.tokenLifetimeSeconds ?? 3600) * 1000;
    this.rateLimit = options.rateLimit ?? 5000;
    this.now = options.now ?? Date.now;
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.privateKey = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    this.publicKey = publicKey;
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        this.violations.push(`fake crashed: ${String(error)}`);
        response.writeHead(599).end();
      });
    });
  }

  async start(): Promise<this> {
    description();
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}${this.prefix}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Installs the App on an account (user or organization) and returns the installation id. */
  install(account: string, installationId = 1000 + this.installations.size): number {
    this.installations.set(installationId, account.toLowerCase());
    return installationId;
  }

  /** The App's key is revoked (or expired): GitHub refuses every JWT it signs. */
  revokeAppKey(): void {
    this.keyRevoked = true;
  }

  revokeInstallationTokens(): void {
    for (const token of this.tokens.values()) token.revoked = true;
  }

  /** Tokens issued so far, oldest first, for tests of renewal. */
  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  /** Runners of a repository (`owner/name`) or an organization (`org`). */
  runnersOf(scope: string): FakeRunner[] {
    return [...(this.runners.get(scope.toLowerCase())?.values() ?? [])];
  }

  /** A runner registered outside Hearth's client, e.g. a leftover of a crashed attempt. */
  addRunner(scope: string, name: string, options: { busy?: boolean } = {}): FakeRunner {
    const runner: FakeRunner = {
      id: this.nextRunnerId++,
      name,
      labels: ["self-hosted"],
      runnerGroupId: 1,
      busy: options.busy ?? false,
      encodedJitConfig: randomBytes(24).toString("base64"),
    };
    this.scopeRunners(scope).set(runner.id, runner);
    return runner;
  }

  setOnline(scope: string, runnerId: number, online = true): void {
    const runner = this.scopeRunners(scope).get(runnerId);
    if (!runner) throw new Error(`no runner ${runnerId} in ${scope}`);
    runner.online = online;
  }

  markBusy(scope: string, runnerId: number, busy = true): void {
    const runner = this.scopeRunners(scope).get(runnerId);
    if (!runner) throw new Error(`no runner ${runnerId} in ${scope}`);
    runner.busy = busy;
  }

  /**
   * The next `count` matching calls get a secondary rate limit with `retry-after`: a 403 by
   * default, or the 429 GitHub also answers.
   */
  injectSecondaryRateLimit(
    count: number,
    retryAfterSeconds: number,
    matches: Injection["matches"] = () => true,
    status: 403 | 429 = 403,
  ): void {
    this.secondaryLimits.push({ count, retryAfterSeconds, matches, status });
  }

  /** The next `count` matching list answers lose their last item while `total_count` stays. */
  injectTruncatedPage(count: number, matches: Injection["matches"] = () => true): void {
    this.truncations.push({ count, matches });
  }

  /** A delivery of the App's webhook, as GitHub records it; `statusCode` 0 when no answer came. */
  addDelivery(
    delivery: Partial<Omit<FakeDelivery, "id">> & { event: string; statusCode: number },
  ): FakeDelivery {
    const created: FakeDelivery = {
      guid: delivery.guid ?? randomUUID(),
      deliveredAt: delivery.deliveredAt ?? this.now(),
      redelivery: delivery.redelivery ?? false,
      action: delivery.action ?? null,
      repositoryId: delivery.repositoryId ?? null,
      payload: delivery.payload ?? null,
      ...delivery,
      id: this.nextDeliveryId++,
    };
    this.deliveries.push(created);
    return created;
  }

  /** A workflow run of `owner/name` with its jobs (their latest attempt). */
  addRun(
    repository: string,
    run: {
      status: FakeRun["status"];
      attempt?: number;
      jobs: Array<Partial<Omit<FakeJob, "id">> & { status: FakeJob["status"] }>;
    },
  ): FakeRun {
    const created: FakeRun = {
      id: this.nextRunId++,
      repository: repository.toLowerCase(),
      status: run.status,
      attempt: run.attempt ?? 1,
      jobs: run.jobs.map((job) => ({
        name: "build",
        conclusion: job.status === "completed" ? "success" : null,
        labels: ["self-hosted", "linux"],
        runnerName: null,
        createdAt: this.now(),
        ...job,
        id: this.nextJobId++,
      })),
    };
    this.runs.push(created);
    return created;
  }

  runsOf(repository: string): FakeRun[] {
    return this.runs.filter((run) => run.repository === repository.toLowerCase());
  }

  /** The next `count` matching calls get a 502. */
  injectServerError(count: number, matches: Injection["matches"] = () => true): void {
    this.serverErrors.push({ count, matches });
  }

  private scopeRunners(scope: string): Map<number, FakeRunner> {
    const key = scope.toLowerCase();
    let runners = this.runners.get(key);
    if (!runners) {
      runners = new Map();
      this.runners.set(key, runners);
    }
    return runners;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const method = request.method ?? "GET";
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const recorded: RecordedRequest = { method, path: url.pathname, query: url.search, status: 0 };
    this.requests.push(recorded);

    const reject = (why: string) => {
      this.violations.push(`${method} ${url.pathname}: ${why}`);
      recorded.status = 599;
      response
        .writeHead(599, { "content-type": "application/json" })
        .end(JSON.stringify({ message: `fake-github: ${why}` }));
    };

    if (!url.pathname.startsWith(`${this.prefix}/`))
      return reject(`not under the base URL's path ${this.prefix || "/"}`);
    const path = url.pathname.slice(this.prefix.length);
    const found = describedOperation(method, path);
    if (!found) return reject("no operation of GitHub's API has this method and path");
    const { operation, params } = found;
    recorded.template = operation.template;

    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        return reject("the body is not JSON");
      }
    }
    const bodyProblem = requestBodyProblem(operation, body);
    if (bodyProblem) return reject(bodyProblem);

    const answer = this.answer(
      method,
      operation,
      params,
      url.searchParams,
      body as Json,
      request.headers.authorization,
    );
    const answerProblem = responseProblem(operation, answer.status, answer.body);
    if (answerProblem) return reject(answerProblem.replace(/^the answer/, "the fake's own answer"));
    recorded.status = answer.status;
    response.writeHead(answer.status, {
      "content-type": "application/json; charset=utf-8",
      ...answer.headers,
    });
    response.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
  }

  private answer(
    method: string,
    operation: Operation,
    params: Record<string, string>,
    query: URLSearchParams,
    body: Json,
    authorization: string | undefined,
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    const error = (status: number, message: string, extra: Json = {}) => ({
      status,
      body: { message, documentation_url: "https://docs.github.com/rest", ...extra },
    });
    for (const [list, make] of [
      [
        this.secondaryLimits,
        (injection: Injection & { retryAfterSeconds?: number; status?: 403 | 429 }) => ({
          ...error(
            injection.status ?? 403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
          ),
          headers: { "retry-after": String(injection.retryAfterSeconds ?? 60) },
        }),
      ],
      [this.serverErrors, () => error(502, "Server Error")],
    ] as const) {
      const injection = (list as Injection[]).find(
        (item) => item.count > 0 && item.matches(method, operation.template),
      );
      if (injection) {
        injection.count--;
        return (make as (injection: Injection) => ReturnType<typeof error>)(injection);
      }
    }

    // Authentication: the App's JWT for /app/… and …/installation, a token for everything else.
    const jwtOperation =
      operation.template.startsWith("/app/") || operation.template.endsWith("/installation");
    let actor: { installationId?: number; owners: string[]; bucket: string };
    if (jwtOperation) {
      const jwt = /^bearer (.+)$/i.exec(authorization ?? "")?.[1];
      if (!jwt || !this.verifyJwt(jwt)) return error(401, "A JSON web token could not be decoded");
      actor = { owners: [], bucket: `app:${this.appId}` };
    } else {
      const token = /^token (.+)$/i.exec(authorization ?? "")?.[1] ?? "";
      const installation = this.tokens.get(token);
      const pat = this.personalAccessTokens.get(token);
      if (installation && !installation.revoked && installation.expiresAt > this.now()) {
        actor = {
          installationId: installation.installationId,
          owners: [this.installations.get(installation.installationId) ?? ""],
          bucket: `installation:${installation.installationId}`,
        };
      } else if (pat) {
        actor = { owners: pat.map((owner) => owner.toLowerCase()), bucket: `token:${token}` };
      } else {
        return error(401, "Bad credentials");
      }
    }
    // GitHub counts calls in a fixed hour per bucket, from the bucket's first call of the hour.
    let window = this.used.get(actor.bucket);
    if (!window || this.now() >= window.resetAt) {
      window = { count: 0, resetAt: Math.ceil((this.now() + 3_600_000) / 1000) * 1000 };
      this.used.set(actor.bucket, window);
    }
    window.count += 1;
    const used = window.count;
    const headers = {
      "x-ratelimit-limit": String(this.rateLimit),
      "x-ratelimit-remaining": String(Math.max(0, this.rateLimit - used)),
      "x-ratelimit-used": String(used),
      "x-ratelimit-reset": String(window.resetAt / 1000),
      "x-ratelimit-resource": "core",
    };
    if (used > this.rateLimit) {
      return {
        ...error(403, "API rate limit exceeded for installation."),
        headers: { ...headers, "x-ratelimit-remaining": "0" },
      };
    }
    const result = this.route(method, operation.template, params, query, body, actor, error);
    const truncation = this.truncations.find(
      (item) => item.count > 0 && item.matches(method, operation.template),
    );
    if (truncation && result.status === 200 && result.body && typeof result.body === "object") {
      const list = Object.values(result.body as Json).find(Array.isArray) as unknown[] | undefined;
      if (list && list.length > 0) {
        truncation.count--;
        list.pop();
      }
    }
    return { ...result, headers: { ...headers, ...result.headers } };
  }

  private route(
    method: string,
    template: string,
    params: Record<string, string>,
    query: URLSearchParams,
    body: Json,
    actor: { installationId?: number; owners: string[] },
    error: (status: number, message: string, extra?: Json) => { status: number; body: Json },
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    const installationExample = () =>
      resolve({ $ref: "#/components/examples/installation" }).node.value as Json;
    switch (`${method} ${template}`) {
      case "GET /repos/{owner}/{repo}/installation":
      case "GET /orgs/{org}/installation": {
        const owner = (params.owner ?? params.org ?? "").toLowerCase();
        const found = [...this.installations].find(([, account]) => account === owner);
        if (!found) return error(404, "Not Found");
        const example = installationExample();
        return {
          status: 200,
          body: {
            ...example,
            id: found[0],
            account: { ...(example.account as Json), login: found[1] },
            app_id: this.appId,
          },
        };
      }
      case "GET /app/hook/deliveries": {
        const perPage = Math.min(100, Number(query.get("per_page") ?? 30));
        const cursor = query.get("cursor");
        // Newest first; the cursor is the id the next page starts below.
        const newestFirst = [...this.deliveries].reverse();
        const start = cursor === null ? 0 : newestFirst.findIndex((item) => item.id < Number(cursor));
        const page = start < 0 ? [] : newestFirst.slice(start, start + perPage);
        const more = start >= 0 && start + perPage < newestFirst.length;
        const last = page.at(-1);
        return {
          status: 200,
          body: page.map(deliveryItem),
          headers:
            more && last
              ? {
                  link: `<${this.baseUrl}/app/hook/deliveries?per_page=${perPage}&cursor=${last.id}>; rel="next"`,
                }
              : {},
        };
      }
      case "GET /app/hook/deliveries/{delivery_id}": {
        const found = this.deliveries.find((item) => item.id === Number(params.delivery_id));
        if (!found) return error(404, "Not Found");
        this.deliveryReads.push(found.id);
        return {
          status: 200,
          body: {
            ...deliveryItem(found),
            url: "https://hearth.example/webhooks/github",
            request: {
              headers: found.payload
                ? { "X-GitHub-Event": found.event, "X-GitHub-Delivery": found.guid }
                : null,
              payload: found.payload,
            },
            response: { headers: null, payload: null },
          },
        };
      }
      case "POST /app/hook/deliveries/{delivery_id}/attempts": {
        const original = this.deliveries.find((item) => item.id === Number(params.delivery_id));
        if (!original) return error(404, "Not Found");
        this.redeliveryRequests.push(original.id);
        this.addDelivery({
          guid: original.guid,
          event: original.event,
          action: original.action,
          repositoryId: original.repositoryId,
          payload: original.payload,
          redelivery: true,
          statusCode: this.redeliveryStatusCode,
        });
        return { status: 202, body: {} };
      }
      case "POST /app/installations/{installation_id}/access_tokens": {
        const installationId = Number(params.installation_id);
        if (!this.installations.has(installationId)) return error(404, "Not Found");
        const token = `ghs_${randomBytes(18).toString("hex")}`;
        const expiresAt = this.now() + this.tokenLifetimeMs;
        this.tokens.set(token, { installationId, expiresAt, revoked: false });
        return {
          status: 201,
          body: {
            token,
            expires_at: new Date(expiresAt).toISOString(),
            permissions: { administration: "write", organization_self_hosted_runners: "write" },
            repository_selection: "all",
          },
        };
      }
    }

    const scope = params.org ?? `${params.owner}/${params.repo}`;
    const owner = (params.org ?? params.owner ?? "").toLowerCase();
    if (!actor.owners.includes(owner)) return error(404, "Not Found");
    const runners = this.scopeRunners(scope);
    const shape = (runner: FakeRunner) => ({
      id: runner.id,
      name: runner.name,
      os: "linux",
      status: runner.online ? "online" : "offline",
      busy: runner.busy,
      ephemeral: true,
      runner_group_id: runner.runnerGroupId,
      labels: runner.labels.map((name, index) => ({
        id: index + 1,
        name,
        type: name === "self-hosted" ? "read-only" : "custom",
      })),
    });
    const kind = template.replace(/^\/(repos\/\{owner\}\/\{repo\}|orgs\/\{org\})/, "");
    const perPage = Math.min(100, Number(query.get("per_page") ?? 30));
    const pageNumber = Math.max(1, Number(query.get("page") ?? 1));
    const paged = <T>(items: T[]) => items.slice((pageNumber - 1) * perPage, pageNumber * perPage);
    const pageLink = (total: number): Record<string, string> => {
      if (pageNumber * perPage >= total) return {};
      const next = new URLSearchParams(query);
      next.set("page", String(pageNumber + 1));
      return {
        link: `<${this.baseUrl}${template.replace(/\{(\w+)\}/g, (_, key: string) => params[key] ?? key)}?${next}>; rel="next"`,
      };
    };
    switch (`${method} ${kind}`) {
      case "GET /actions/runs": {
        const status = query.get("status");
        const listed = this.runsOf(scope).filter((run) => status === null || run.status === status);
        return {
          status: 200,
          body: { total_count: listed.length, workflow_runs: paged(listed).map((run) => this.runShape(run)) },
          headers: pageLink(listed.length),
        };
      }
      case "GET /actions/runs/{run_id}/jobs": {
        const run = this.runsOf(scope).find((item) => item.id === Number(params.run_id));
        if (!run) return error(404, "Not Found");
        return {
          status: 200,
          body: { total_count: run.jobs.length, jobs: paged(run.jobs).map((job) => this.jobShape(run, job)) },
          headers: pageLink(run.jobs.length),
        };
      }
      case "POST /actions/runners/generate-jitconfig": {
        const name = String(body.name);
        if ([...runners.values()].some((runner) => runner.name === name)) {
          return error(422, "Validation Failed", {
            errors: [`Already exists - A runner with the name ${name} already exists.`],
          });
        }
        if (template.startsWith("/repos/") && body.runner_group_id !== 1) return error(404, "Not Found");
        const runner: FakeRunner = {
          id: this.nextRunnerId++,
          name,
          labels: body.labels as string[],
          runnerGroupId: Number(body.runner_group_id),
          busy: false,
          encodedJitConfig: Buffer.from(
            JSON.stringify({ runner: name, secret: randomBytes(16).toString("hex") }),
          ).toString("base64"),
        };
        runners.set(runner.id, runner);
        return { status: 201, body: { runner: shape(runner), encoded_jit_config: runner.encodedJitConfig } };
      }
      case "GET /actions/runners": {
        const name = query.get("name");
        const listed = [...runners.values()].filter((runner) => name === null || runner.name === name);
        return {
          status: 200,
          body: { total_count: listed.length, runners: paged(listed).map(shape) },
          headers: pageLink(listed.length),
        };
      }
      case "GET /actions/runners/{runner_id}": {
        const runner = runners.get(Number(params.runner_id));
        if (!runner) return error(404, "Not Found");
        return { status: 200, body: shape(runner) };
      }
      case "GET /actions/jobs/{job_id}": {
        for (const run of this.runsOf(scope)) {
          const job = run.jobs.find((item) => item.id === Number(params.job_id));
          if (job) return { status: 200, body: this.jobShape(run, job) };
        }
        return error(404, "Not Found");
      }
      case "DELETE /actions/runners/{runner_id}": {
        const runner = runners.get(Number(params.runner_id));
        // GitHub does not describe this 404 for the operation, but answers it for an unknown runner.
        if (!runner) return error(404, "Not Found");
        if (runner.busy) {
          return error(422, `Bad request - Runner "${runner.name}" is still running a job"`);
        }
        runners.delete(runner.id);
        return { status: 204 };
      }
    }
    return error(404, `the fake does not implement ${method} ${template}`);
  }

  /** A run as GitHub lists it: GitHub's own example, with this run's fields. */
  private runShape(run: FakeRun): Json {
    const example = resolve({ $ref: "#/components/examples/workflow-run" }).node.value as Json;
    return {
      ...example,
      id: run.id,
      status: run.status,
      conclusion: run.status === "completed" ? "success" : null,
      run_attempt: run.attempt,
    };
  }

  /** A job as GitHub lists it: GitHub's own example, with this job's fields. */
  private jobShape(run: FakeRun, job: FakeJob): Json {
    const example = resolve({ $ref: "#/components/examples/job" }).node.value as Json;
    const started = job.status === "in_progress" || job.status === "completed";
    return {
      ...example,
      id: job.id,
      run_id: run.id,
      run_attempt: run.attempt,
      name: job.name,
      workflow_name: "CI",
      status: job.status,
      conclusion: job.status === "completed" ? job.conclusion : null,
      created_at: new Date(job.createdAt).toISOString(),
      started_at: new Date(job.createdAt).toISOString(),
      completed_at: job.status === "completed" ? new Date(this.now()).toISOString() : null,
      labels: job.labels,
      runner_id: started && job.runnerName ? 1 : null,
      runner_name: started ? job.runnerName : null,
      runner_group_id: started && job.runnerName ? 1 : null,
      runner_group_name: started && job.runnerName ? "Default" : null,
      html_url: `https://github.com/${run.repository}/actions/runs/${run.id}/job/${job.id}`,
    };
  }

  private verifyJwt(jwt: string): boolean {
    if (this.keyRevoked) return false;
    const [header, payload, signature] = jwt.split(".");
    if (!header || !payload || !signature) return false;
    const signed = verify(
      "RSA-SHA256",
      Buffer.from(`${header}.${payload}`),
      createPublicKey(this.publicKey.export({ type: "spki", format: "pem" })),
      Buffer.from(signature, "base64url"),
    );
    if (!signed) return false;
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as {
      iss?: unknown;
      exp?: unknown;
    };
    // auth-app signs with the real clock, whatever clock the test gives the fake.
    return String(claims.iss) === String(this.appId) && Number(claims.exp) * 1000 > Date.now();
  }
}
