export * from "./agent";
export * from "./answer";
export type * from "./ports";
