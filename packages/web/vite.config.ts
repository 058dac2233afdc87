import { fileURLToPath } from "node:url";
import { defineConfig, loadEnv, type Plugin } from "vite";
import type * as ExampleStatus from "../core/test/fixtures/status";

const root = fileURLToPath(new URL(".", import.meta.url));

/**
 * A Content-Security-Policy for the built page: its own scripts and styles only, and requests only to
 * itself and the status API. Even a rendering bug could then not run or load anything else.
 */
function contentSecurityPolicy(apiUrl: string | undefined): Plugin {
  const connect = ["'self'"];
  if (apiUrl) connect.push(new URL(apiUrl).origin);
  const policy = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src ${connect.join(" ")}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
  return {
    name: "hearth-csp",
    apply: "build",
    transformIndexHtml: () => [
      {
        tag: "meta",
        attrs: { "http-equiv": "Content-Security-Policy", content: policy },
        injectTo: "head-prepend",
      },
    ],
  };
}

/**
 * `npm run dev -w @hearth/web` serves the example document at /api/status, so the page can be worked
 * on without a control plane; set HEARTH_DEV_API=http://127.0.0.1:PORT to use a running local Hearth.
 */
function exampleApi(): Plugin {
  return {
    name: "hearth-example-api",
    apply: "serve",
    configureServer(server) {
      if (process.env.HEARTH_DEV_API) return;
      server.middlewares.use("/api/status", async (_request, response, next) => {
        try {
          // Loaded through Vite, which compiles core's TypeScript; the config itself runs on plain Node.
          const example = (await server.ssrLoadModule(
            fileURLToPath(new URL("../core/test/fixtures/status.ts", import.meta.url)),
          )) as typeof ExampleStatus;
          response.setHeader("content-type", "application/json");
          response.end(JSON.stringify(example.exampleStatus()));
        } catch (error) {
          next(error);
        }
      });
    },
  };
}

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, root, "VITE_HEARTH_");
  return {
    root,
    // Relative asset URLs: the same build works at `/` in local mode and under any static-site path.
    base: "./",
    // Only VITE_HEARTH_* reaches the page; nothing else from the build's environment can leak into it.
    envPrefix: "VITE_HEARTH_",
    build: {
      outDir: "dist",
      emptyOutDir: true,
      target: "es2022",
      reportCompressedSize: false,
      rollupOptions: {
        onwarn(warning, warn) {
          // zod places some /*@__PURE__*/ comments where rollup cannot use them; harmless, and not ours.
          if (warning.code === "INVALID_ANNOTATION" && warning.id?.includes("/node_modules/zod/")) return;
          warn(warning);
        },
      },
    },
    server: process.env.HEARTH_DEV_API ? { proxy: { "/api": process.env.HEARTH_DEV_API } } : {},
    plugins: [contentSecurityPolicy(env.VITE_HEARTH_API_URL || undefined), exampleApi()],
  };
});
