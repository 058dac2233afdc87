/**
 * The rate governor of one token (a GitHub installation or App, a GitLab API token): whether
 * reconciliation (polling, the sweep) may spend one more call now. Pure: it learns only from the
 * forge's rate headers and the calls it allowed, and reads the time from its clock.
 *
 * The token's budget is shared with what cannot wait (minting and deleting runners, tag lookups,
 * retries), so reconciliation keeps to a share of it (10% by default), paced over the forge's window
 * so that every poll gets its part instead of the first polls spending it all; and it stops while the
 * forge says that less than a reserve of the whole budget is left, well before the limit itself.
 * `Retry-After` (a secondary limit, GitLab's 429) stops it until then.
 */

export interface RateGovernorOptions {
  /** The token's budget per window until the forge's headers say it (GitHub: 5,000 an hour). */
  assumedLimit: number;
  /** The forge's window, in seconds, until a reset header says when it ends (GitHub: 3,600). */
  windowSeconds: number;
  /** The share of the budget reconciliation may spend, from 0 to 1; 0.1 by default. */
  share?: number;
  /**
   * No call while the forge says less than this share of the whole budget is left (0.1 by default):
   * what remains is for the calls that cannot wait.
   */
  reserve?: number;
  /** Calls that may go at once after a quiet spell: a poll interval's worth by default (1/60 of the share). */
  burst?: number;
  now: () => number;
}

/** What a forge's answer said about the token's budget, read from its headers. */
export interface RateObservation {
  limit?: number;
  remaining?: number;
  /** When the window ends (ms since the epoch). */
  resetAt?: number;
  /** Wait until then (ms since the epoch): `Retry-After`. */
  retryAt?: number;
}

export type Denial =
  /** A `Retry-After` (or a refused call) said to wait. */
  | "retry-after"
  /** The forge says the token's budget is down to its reserve. */
  | "reserve"
  /** Reconciliation spent its share of this window. */
  | "share"
  /** Reconciliation spends its share evenly over the window: not yet. */
  | "pace";

export interface GovernorReport {
  /** Calls reconciliation made since the report before (a poll's figure). */
  calls: number;
  /** Calls reconciliation may still make in the window, by its share. */
  shareLeft: number;
  /** What the forge last said is left of the whole budget, if it said. */
  forgeRemaining: number | undefined;
  limit: number;
  /** Why the last call asked for was refused, if it was. */
  denied: Denial | undefined;
  blockedUntil: Date | undefined;
}

type Headers = Record<string, string | number | undefined | null> | { get(name: string): string | null };

/** A header, case-insensitive, from a plain record (Octokit) or a fetch `Headers`. */
function header(headers: Headers, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === lower && value !== undefined && value !== null) return String(value);
  }
  return undefined;
}

const numberOf = (text: string | undefined): number | undefined => {
  if (text === undefined || text.trim() === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
};

/**
 * The rate headers of an answer: GitHub's `x-ratelimit-limit/remaining/reset` (reset in epoch
 * seconds), GitLab's `RateLimit-Limit/Remaining/Reset` (the same), and `Retry-After` in seconds or as
 * an HTTP date.
 */
export function readRateHeaders(headers: Headers, now: number): RateObservation {
  const limit = numberOf(header(headers, "x-ratelimit-limit") ?? header(headers, "ratelimit-limit"));
  const remaining = numberOf(
    header(headers, "x-ratelimit-remaining") ?? header(headers, "ratelimit-remaining"),
  );
  const reset = numberOf(header(headers, "x-ratelimit-reset") ?? header(headers, "ratelimit-reset"));
  const retryAfter = header(headers, "retry-after");
  let retryAt: number | undefined;
  if (retryAfter !== undefined) {
    const seconds = numberOf(retryAfter);
    const date = Date.parse(retryAfter);
    retryAt = seconds !== undefined ? now + seconds * 1000 : Number.isFinite(date) ? date : undefined;
  }
  return {
    ...(limit !== undefined && limit > 0 ? { limit } : {}),
    ...(remaining !== undefined ? { remaining } : {}),
    ...(reset !== undefined ? { resetAt: reset * 1000 } : {}),
    ...(retryAt !== undefined ? { retryAt } : {}),
  };
}

/**
 * What a governor knows, as plain data: reconciliation runs in short-lived functions, so its windows
 * are stored between runs (`polling/state.ts`) and the budget holds across them.
 */
export interface GovernorSnapshot {
  limit: number;
  remaining?: number;
  spentSinceObserved: number;
  resetAt?: number;
  retryAt: number;
  /** Reconciliation's calls in the window (ms since the epoch). */
  spent: number[];
  tokens: number;
  refilledAt: number;
}

const finiteAtLeast = (value: unknown, min: number): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= min;

export class RateGovernor {
  private readonly share: number;
  private readonly reserve: number;
  private readonly windowMs: number;
  private readonly burstOption: number | undefined;
  private readonly now: () => number;
  private limit: number;
  private remaining: number | undefined;
  /** Calls reconciliation made since the forge last said what remains. */
  private spentSinceObserved = 0;
  private resetAt: number | undefined;
  private retryAt = 0;
  /** Reconciliation's calls in the last window (their times), for its share. */
  private spent: number[] = [];
  private tokens: number;
  private refilledAt: number;
  private callsSinceReport = 0;
  private denied: Denial | undefined;

  constructor(options: RateGovernorOptions) {
    const share = options.share ?? 0.1;
    const reserve = options.reserve ?? 0.1;
    if (!(share > 0 && share <= 1)) throw new Error(`share ${share} is not above 0 and at most 1`);
    if (!(reserve >= 0 && reserve < 1)) throw new Error(`reserve ${reserve} is not from 0 to below 1`);
    if (!(options.assumedLimit >= 1))
      throw new Error(`assumedLimit ${options.assumedLimit} is not at least 1`);
    if (!(options.windowSeconds > 0))
      throw new Error(`windowSeconds ${options.windowSeconds} is not positive`);
    this.share = share;
    this.reserve = reserve;
    this.windowMs = options.windowSeconds * 1000;
    this.burstOption = options.burst;
    this.now = options.now;
    this.limit = options.assumedLimit;
    this.refilledAt = this.now();
    this.tokens = this.burst();
  }

  /** The share of the window's budget, in calls. */
  private allowance(): number {
    return Math.floor(this.limit * this.share);
  }

  private burst(): number {
    return Math.max(1, this.burstOption ?? Math.ceil(this.allowance() / 60));
  }

  private refill(now: number): void {
    const rate = this.allowance() / this.windowMs;
    this.tokens = Math.min(this.burst(), this.tokens + (now - this.refilledAt) * rate);
    this.refilledAt = now;
  }

  /** The governor's state, to restore in another process (calls out of the window are left out). */
  snapshot(): GovernorSnapshot {
    const now = this.now();
    this.spent = this.spent.filter((at) => at > now - this.windowMs);
    return {
      limit: this.limit,
      ...(this.remaining !== undefined ? { remaining: this.remaining } : {}),
      spentSinceObserved: this.spentSinceObserved,
      ...(this.resetAt !== undefined ? { resetAt: this.resetAt } : {}),
      retryAt: this.retryAt,
      spent: [...this.spent],
      tokens: this.tokens,
      refilledAt: this.refilledAt,
    };
  }

  /**
   * Takes on a stored state. A field that is not what a snapshot holds is left as it is (a damaged
   * item costs the memory of past calls, never a refusal to govern); calls in the future are dropped.
   */
  restore(snapshot: Partial<GovernorSnapshot>): void {
    const now = this.now();
    if (finiteAtLeast(snapshot.limit, 1)) this.limit = snapshot.limit;
    this.remaining = finiteAtLeast(snapshot.remaining, 0) ? snapshot.remaining : undefined;
    this.spentSinceObserved = finiteAtLeast(snapshot.spentSinceObserved, 0) ? snapshot.spentSinceObserved : 0;
    this.resetAt = finiteAtLeast(snapshot.resetAt, 0) ? snapshot.resetAt : undefined;
    this.retryAt = finiteAtLeast(snapshot.retryAt, 0) ? snapshot.retryAt : 0;
    if (Array.isArray(snapshot.spent)) {
      this.spent = snapshot.spent.filter(
        (at): at is number => finiteAtLeast(at, 0) && at > now - this.windowMs && at <= now,
      );
    }
    if (
      finiteAtLeast(snapshot.tokens, 0) &&
      finiteAtLeast(snapshot.refilledAt, 0) &&
      snapshot.refilledAt <= now
    ) {
      this.tokens = Math.min(this.burst(), snapshot.tokens);
      this.refilledAt = snapshot.refilledAt;
    }
  }

  /** Why a call may not go now, or undefined when it may. */
  check(): Denial | undefined {
    const now = this.now();
    this.spent = this.spent.filter((at) => at > now - this.windowMs);
    if (now < this.retryAt) return "retry-after";
    if (this.resetAt !== undefined && now >= this.resetAt) {
      // The forge's window has ended: what it said of the old one no longer holds.
      this.remaining = undefined;
      this.resetAt = undefined;
      this.spentSinceObserved = 0;
    }
    if (this.remaining !== undefined) {
      const left = this.remaining - this.spentSinceObserved;
      // Stop one call early: the call itself must leave the reserve whole.
      if (left - 1 < Math.ceil(this.limit * this.reserve)) return "reserve";
    }
    if (this.spent.length >= this.allowance()) return "share";
    this.refill(now);
    if (this.tokens < 1) return "pace";
    return undefined;
  }

  /** Takes one call if it may go now (undefined); else says why not, and takes nothing. */
  take(): Denial | undefined {
    const denial = this.check();
    this.denied = denial;
    if (denial) return denial;
    this.tokens -= 1;
    this.spent.push(this.now());
    this.spentSinceObserved += 1;
    this.callsSinceReport += 1;
    return undefined;
  }

  /** What an answer's headers said (any call with this token, reconciliation's or not). */
  observe(observation: RateObservation): void {
    if (observation.limit !== undefined) this.limit = observation.limit;
    if (observation.remaining !== undefined) {
      this.remaining = observation.remaining;
      this.spentSinceObserved = 0;
    }
    if (observation.resetAt !== undefined) this.resetAt = observation.resetAt;
    if (observation.retryAt !== undefined) this.backOff(observation.retryAt);
  }

  /** The forge refused a call for its limits: nothing until `until`. */
  backOff(until: number): void {
    this.retryAt = Math.max(this.retryAt, until);
  }

  /** The figures since the report before, which this starts anew: one poll's calls and what is left. */
  report(): GovernorReport {
    const now = this.now();
    this.spent = this.spent.filter((at) => at > now - this.windowMs);
    const blockedUntil =
      now < this.retryAt
        ? this.retryAt
        : this.denied === "reserve" && this.resetAt !== undefined
          ? this.resetAt
          : undefined;
    const report: GovernorReport = {
      calls: this.callsSinceReport,
      shareLeft: Math.max(0, this.allowance() - this.spent.length),
      forgeRemaining:
        this.remaining === undefined ? undefined : Math.max(0, this.remaining - this.spentSinceObserved),
      limit: this.limit,
      denied: this.denied,
      blockedUntil: blockedUntil === undefined ? undefined : new Date(blockedUntil),
    };
    this.callsSinceReport = 0;
    this.denied = undefined;
    return report;
  }
}

/** One governor per token (rate bucket), made on first use with the same options. */
export class RateGovernors {
  private readonly governors = new Map<string, RateGovernor>();

  constructor(private readonly options: RateGovernorOptions) {}

  for(bucket: string): RateGovernor {
    let governor = this.governors.get(bucket);
    if (!governor) {
      governor = new RateGovernor(this.options);
      this.governors.set(bucket, governor);
    }
    return governor;
  }

  /** Every bucket's state, to store. */
  snapshot(): Record<string, GovernorSnapshot> {
    return Object.fromEntries([...this.governors].map(([bucket, governor]) => [bucket, governor.snapshot()]));
  }

  /** Takes on stored states: each bucket's governor is made (if need be) and restored. */
  restore(snapshots: Record<string, Partial<GovernorSnapshot>>): void {
    for (const [bucket, snapshot] of Object.entries(snapshots)) {
      if (snapshot && typeof snapshot === "object") this.for(bucket).restore(snapshot);
    }
  }

  /** Every bucket's figures since its report before. */
  report(): Record<string, GovernorReport> {
    return Object.fromEntries([...this.governors].map(([bucket, governor]) => [bucket, governor.report()]));
  }
}

/** Why a governed call did not answer: the governor held it back, or the call failed. */
export class Unanswered extends Error {
  constructor(
    message: string,
    /** The governor's reason, or a rate limit: no further call with this token this poll. */
    readonly stopsToken: boolean,
  ) {
    super(message);
  }
}

/** Why the governor held a call to `forge` back, in words. */
export function denialText(denial: Denial, forge: "GitHub" | "GitLab"): string {
  switch (denial) {
    case "retry-after":
      return `${forge} asked to wait (Retry-After)`;
    case "reserve":
      return "the token's budget is down to its reserve";
    case "share":
      return "polling spent its share of the token's budget";
    case "pace":
      return `polling paces its share over the ${forge === "GitHub" ? "hour" : "window"}`;
  }
}
