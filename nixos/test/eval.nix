# Evaluates Hearth's modules with nixpkgs `lib` and the upstream option stubs; what the tests read.
# nix-instantiate --eval --strict --json nixos/test/eval.nix --arg lib 'import <lib>' --arg settings '{ ... }'
{
  lib,
  settings ? { },
}:
let
  evaluated = lib.evalModules {
    modules = [
      ./stubs.nix
      ../modules/default.nix
      { services.hearth.agent.bundle = "/opt/hearth/agent.mjs"; }
      settings
    ];
  };
  inherit (evaluated) config options;
  hearthOptions = lib.filter (o: o.visible && !o.internal && lib.hasPrefix "services.hearth." o.name) (
    lib.optionAttrSetToDocList options
  );
  describe = v: if v ? text then v.text else builtins.toJSON v;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  hearth = {
    inherit (config.services.hearth)
      slots
      stage
      pool
      readUserData
      maxJobSeconds
      ;
    jobUids = config.services.hearth.jobUsers.uids;
  };
  nix = {
    inherit (config.nix) settings nrBuildUsers extraOptions;
    gcAutomatic = config.nix.gc.automatic;
  };
  nftables = config.networking.nftables;
  gitlabRunner = config.services.gitlab-runner;
  services = config.systemd.services;
  paths = config.systemd.paths;
  users = config.users;
  etc = config.environment.etc;
  options = map (o: {
    inherit (o) name type readOnly;
    default = if o ? default then describe o.default else null;
    description = o.description or "";
  }) hearthOptions;
}
