import { api } from "./api";

/**
 * The status page: a static site (S3 behind CloudFront) built with the API's URL; the page asks
 * `<api>/api/status` with the status token its reader enters.
 */
export const site = new sst.aws.StaticSite("StatusPage", {
  path: "packages/web",
  build: { command: "npm run build", output: "dist" },
  environment: { VITE_HEARTH_API_URL: api.url },
  // SST writes Vite env types for `environment`; outside the sources, since packages/web declares its
  // own (an optional URL, for local mode), and the two declarations would conflict.
  vite: { types: "../../.sst/web-env.d.ts" },
});
