# Hearth's agent (packages/agent), bundled into one file by its workspace's `build` script
# (`packages/agent/dist/agent.mjs`). Dependencies come from package-lock.json by their integrity hashes
# (importNpmLock), so no separate dependency hash is kept here.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs_22,
  src,
}:
buildNpmPackage {
  pname = "hearth-agent";
  version = (lib.importJSON (src + "/package.json")).version;
  src = lib.fileset.toSource {
    root = src;
    fileset = lib.fileset.unions [
      (src + "/package.json")
      (src + "/package-lock.json")
      (src + "/tsconfig.json")
      (src + "/packages")
    ];
  };
  nodejs = nodejs_22;
  npmDeps = importNpmLock { npmRoot = src; };
  npmConfigHook = importNpmLock.npmConfigHook;
  npmWorkspace = "packages/agent";
  npmBuildScript = "build";
  installPhase = ''
    runHook preInstall
    install -Dm0644 packages/agent/dist/agent.mjs $out/lib/hearth/agent.mjs
    runHook postInstall
  '';
  meta = {
    description = "Hearth's on-instance agent: heartbeat, runner hand-off, drain";
    license = lib.licenses.mit;
  };
}
