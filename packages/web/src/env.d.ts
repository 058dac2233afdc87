/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The API's base URL, for a status page served from another origin. */
  readonly VITE_HEARTH_API_URL?: string;
}
