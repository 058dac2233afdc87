# GitHub: one unit per job slot, `hearth-github-runner-<slot>`, each running one ephemeral just-in-time
# runner (`Runner.Listener run --jitconfig`) as that slot's job user. The agent starts a slot's unit
# after writing the config the control plane minted for it to `<configDir>/<slot>/jitconfig`; the unit
# hands it over as a systemd credential and deletes the file once the runner runs. After its one job
# the runner exits and the slot gets a new runner; the instance and its store live on.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.services.hearth;
  gh = cfg.github;
  slots = lib.genList (slot: slot) cfg.slots;
  slotUser = slot: "hearth-job-${toString slot}";
  workDir = slot: "${cfg.stateDir}/runners/${toString slot}";
  configFile = slot: "${gh.configDir}/${toString slot}/jitconfig";
  # A backstop only: the agent stops a runner whose job passes the pool's limit (from the user data,
  # which may be longer than this image's `maxJobSeconds`) and reports why. Listening is bounded by
  # the control plane (a config not picked up in 10 minutes is withdrawn), so no run outlives the
  # longest limit a pool may set (7200 minutes) plus that.
  runtimeMax = "${toString (7200 * 60 + 600)}s";
in
{
  imports = [ ./options.nix ];

  options.services.hearth.github = {
    enable = mkEnableOption "the GitHub just-in-time runner units, one per job slot";

    package = mkOption {
      type = types.package;
      default = pkgs.github-runner;
      defaultText = lib.literalExpression "pkgs.github-runner";
      description = "The GitHub Actions runner; its `bin/Runner.Listener` runs each slot's runner.";
    };

    uidBase = mkOption {
      type = types.int;
      default = 30100;
      description = "Slot `n` runs its jobs as user `hearth-job-<n>` with uid `uidBase + n`.";
    };

    configDir = mkOption {
      type = types.str;
      default = "/run/hearth/runners";
      readOnly = true;
      description = "Where the agent writes each slot's JIT config, `<slot>/jitconfig` (tmpfs, root only).";
    };

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "Packages on the jobs' `PATH` besides bash, coreutils, git and Nix.";
    };
  };

  config = mkIf gh.enable {
    services.hearth.jobUsers.uids = map (slot: gh.uidBase + slot) slots;

    users.users = lib.listToAttrs (
      map (
        slot:
        lib.nameValuePair (slotUser slot) {
          isSystemUser = true;
          uid = gh.uidBase + slot;
          group = cfg.jobUsers.group;
          home = workDir slot;
        }
      ) slots
    );

    systemd.services = lib.listToAttrs (
      map (
        slot:
        lib.nameValuePair "hearth-github-runner-${toString slot}" {
          description = "Hearth: GitHub just-in-time runner of slot ${toString slot}";
          # Not wanted by multi-user.target: the agent starts it once the slot has a config.
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          unitConfig.ConditionPathExists = configFile slot;
          path = [
            pkgs.bash
            pkgs.coreutils
            pkgs.git
            config.nix.package
          ]
          ++ gh.extraPackages;
          environment = {
            RUNNER_ROOT = workDir slot;
            HOME = workDir slot;
          };
          serviceConfig = {
            Type = "simple";
            User = slotUser slot;
            Group = cfg.jobUsers.group;
            WorkingDirectory = workDir slot;
            # Read as root, visible to this unit's user only, gone when the unit stops.
            LoadCredential = "jitconfig:${configFile slot}";
            # A fresh work folder for every runner: nothing of the last job is left but the Nix store.
            ExecStartPre = "+${pkgs.coreutils}/bin/install -d -m 0700 -o ${slotUser slot} -g ${cfg.jobUsers.group} ${workDir slot}";
            ExecStartPost = "+${pkgs.coreutils}/bin/rm -f ${configFile slot}";
            ExecStopPost = "+${pkgs.coreutils}/bin/rm -rf ${workDir slot}";
            Restart = "no";
            RuntimeMaxSec = runtimeMax;
            KillSignal = "SIGINT";
            TimeoutStopSec = "30s";
            # The config is on Runner.Listener's command line: other users' processes are invisible.
            ProtectProc = "invisible";
          };
          script = ''
            exec ${gh.package}/bin/Runner.Listener run --jitconfig "$(cat "$CREDENTIALS_DIRECTORY/jitconfig")"
          '';
        }
      ) slots
    );
  };
}
