/**
 * Faults local mode's simulated forges inject into their runner listings (GitHub's `GET
 * …/actions/runners`, GitLab's `GET /runners/:id/managers`), so that the sweep can be shown to act on
 * nothing when a listing fails: a 500, a 429 with the forge's rate headers, or a truncated page (one
 * item fewer than the listing says it has). Each fault lasts for the next `calls` listing calls of its
 * forge. Kept in memory only: a restart clears them.
 */

export const listingFaultKinds = ["500", "429", "truncated"] as const;
export type ListingFaultKind = (typeof listingFaultKinds)[number];
export type FaultyForge = "github" | "gitlab";

/** The most listing calls one fault may last. */
export const MAX_FAULT_CALLS = 1_000;

export interface ListingFault {
  kind: ListingFaultKind;
  /** Listing calls still to fail. */
  calls: number;
}

export class SimulatedListingFaults {
  private readonly faults = new Map<FaultyForge, ListingFault>();

  /** Replaces a forge's fault (`null` clears it). */
  set(forge: FaultyForge, fault: ListingFault | null): void {
    if (fault === null || fault.calls <= 0) this.faults.delete(forge);
    else this.faults.set(forge, { ...fault });
  }

  /** What is left of each forge's fault. */
  current(): Partial<Record<FaultyForge, ListingFault>> {
    return Object.fromEntries([...this.faults].map(([forge, fault]) => [forge, { ...fault }]));
  }

  /** Takes one listing call's fault, if the forge has one left. */
  take(forge: FaultyForge): ListingFaultKind | undefined {
    const fault = this.faults.get(forge);
    if (!fault) return undefined;
    fault.calls -= 1;
    if (fault.calls <= 0) this.faults.delete(forge);
    return fault.kind;
  }
}
