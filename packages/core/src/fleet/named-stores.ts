// Apart from index.ts, so that the API Lambda's init bundle, which loads index.ts, does not carry it.

/**
 * Of the stopped stores a plan named to start, those its warm pool counts as started (`counted` of
 * the `named`, `CapacityTarget.resumes`) that did not (`started` is every start made): still stopped
 * (no spot capacity and no stand-in; or no need, the group counting in service an instance draining
 * before its detach, which the plan no longer counts), and no extra stores to retire in their place.
 */
export const unstartedNamedStores = (named: number, counted: number, started: number): number =>
  Math.max(0, Math.min(named, counted) - started);
