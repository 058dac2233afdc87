# Options every Hearth module reads: what the instance is (stage, pool, slots), where its parameters
# are, and the job users. Imported by each module; the module system imports it once.
{ lib, ... }:
let
  inherit (lib) mkEnableOption mkOption types;
  fromUserData = what: ''
    ${what}; `null` (the default) reads it at boot from the instance's user data (the `hearth` key
    infra writes into each launch template), so one image serves every pool of its architecture.
  '';
in
{
  options.services.hearth = {
    enable = mkEnableOption "the Hearth runner instance's base settings (Nix, job users, IMDS firewall)";

    stage = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "production";
      description = fromUserData "The Hearth stage this instance serves";
    };

    region = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "us-east-1";
      description = ''
        The AWS region of the stage's parameters; `null` (the default) reads the instance's own region
        from IMDS at boot.
      '';
    };

    pool = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "x86_64";
      description = fromUserData "The pool this instance belongs to";
    };

    slots = mkOption {
      type = types.ints.unsigned;
      default = 2;
      description = ''
        Job slots: how many jobs run at once. Sizes Nix's build users and `max-jobs`, GitLab's
        `concurrent`, and the GitHub slot units. Keep it equal to the pool's `slotsPerInstance`; the
        control plane caps the slots an instance reports at the pool's.
      '';
    };

    readUserData = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Read what is `null` here (stage, pool, parameter names) from the instance's user data at boot.
        Turn it off only when every one of them is set.
      '';
    };

    agentConfigParameter = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/hearth/production/agent";
      description = fromUserData "The SSM parameter (String, JSON `{ heartbeatUrl, binaryCache }`) of the stage's agent config";
    };

    poolCredentialsParameter = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/hearth/production/pools/x86_64/credentials";
      description = fromUserData "The SSM parameter (SecureString, JSON `{ gitlab: { url, token } | null }`) of the pool's credentials";
    };

    runnerConfigPrefix = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/hearth/production/runners";
      description = fromUserData "The SSM path under which the control plane hands this instance its GitHub runner configs";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/hearth";
      description = "Where Hearth keeps state that survives a stop into the warm pool (slot work folders).";
    };

    secretsDir = mkOption {
      type = types.str;
      default = "/run/secrets";
      readOnly = true;
      description = "Where secrets fetched at boot live: tmpfs, root only, never the Nix store.";
    };

    maxJobSeconds = mkOption {
      type = types.nullOr (types.ints.between 60 (31 * 86400));
      default = 21600;
      description = ''
        The longest a job may run, in seconds, when the instance's user data does not say: the pool's
        `maxJobMinutes` (360 by default, GitHub's own job timeout), which infra writes there, wins.
        The agent stops a GitHub slot's runner whose job runs longer, so GitHub records the job
        failed, and reports why; a GitLab job is ended by GitLab itself (the runner's
        `maximum_timeout`, which `npm run runners` sets to the pool's limit). A drain waits at most
        this long for gitlab-runner's jobs. `null`: no limit unless the user data gives one.
      '';
    };

    jobUsers = {
      group = mkOption {
        type = types.str;
        default = "hearth-jobs";
        description = "The primary group of every user a job runs as.";
      };
      gid = mkOption {
        type = types.int;
        default = 30000;
        description = "The group's fixed gid (the IMDS firewall rule matches it).";
      };
      uids = mkOption {
        type = types.listOf types.int;
        default = [ ];
        internal = true;
        description = "The uids jobs run as, collected from the runner modules (the IMDS firewall rule matches them).";
      };
    };

    secrets.fragments = mkOption {
      type = types.attrsOf types.lines;
      default = { };
      internal = true;
      description = ''
        Shell run by `hearth-secrets` at boot, after the prelude has set `instance_id`, `region`,
        `stage`, `pool` and the parameter names, and defined `param NAME` (reads a parameter, decrypted).
      '';
    };
  };
}
