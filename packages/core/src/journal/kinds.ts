/**
 * What a journal entry records, as a plain array with no dependency: the journal writes these kinds
 * and the status document (which the status page bundles) shows them as its events.
 */
export const journalKinds = [
  "decision",
  "runner",
  "interruption",
  "retry",
  "sweep",
  "poll",
  "error",
] as const;
export type JournalKind = (typeof journalKinds)[number];
