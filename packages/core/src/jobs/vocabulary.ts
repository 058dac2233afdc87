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
