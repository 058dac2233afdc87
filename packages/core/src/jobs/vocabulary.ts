/**
 * The job ledger's words, as plain arrays with no dependency: the ledger's zod schemas, the status
 * document (which the status page bundles) and the simulators all import them from here.
 */

export const sources = ["gitlab", "github"] as const;
export type Source = (typeof sources)[number];

/**
 * `waiting` holds jobs the forge knows but will not hand to a runner yet (GitLab `created`, `manual`,
 * `scheduled`; GitHub `waiting` for deployment approval). They are visible, but are not demand.
 */
export const jobStatuses = ["waiting", "queued", "running", "completed", "cancelled"] as const;
export type JobStatus = (typeof jobStatuses)[number];

/**
 * Where a job's Nix store came from, decided once when it starts on an instance (`stores`):
 * - `warm`: its instance's store held the job's cache key;
 * - `substituted`: not warm, but an instance of the pool finished a job of that key within the
 *   binary cache's window, so the stage's binary cache holds its outputs (an inference: Hearth does
 *   not read the cache);
 * - `cold`: neither; the store builds what it lacks.
 */
export const storeOrigins = ["warm", "substituted", "cold"] as const;
export type StoreOrigin = (typeof storeOrigins)[number];
