# GitLab: each instance is one runner manager of its pool's GitLab runner (docs/PROTOCOL.md §1), with
# the shell executor, so jobs build in the instance's own warm Nix store.
#
# At boot `hearth-secrets` reads the pool's credentials parameter into /run/secrets (never the store),
# writes gitlab-runner's `.runner_system_id` from the instance id, and drops the previous boot's
# config.toml so the runner registers with the token current now (it may have been rotated while the
# instance was stopped in the warm pool). gitlab-runner starts only if the pool has a GitLab token.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.services.hearth;
  gl = cfg.gitlab;
  home = "/var/lib/gitlab-runner";
  configDir = "${home}/.gitlab-runner";
in
{
  imports = [ ./options.nix ];

  options.services.hearth.gitlab = {
    enable = mkEnableOption "the pool's GitLab runner (gitlab-runner, shell executor)";

    user = mkOption {
      type = types.str;
      default = "gitlab-runner";
      description = "The user gitlab-runner and its jobs run as (a job user: no IMDS, not trusted by Nix).";
    };

    uid = mkOption {
      type = types.int;
      default = 30001;
      description = "The job user's fixed uid (the IMDS firewall rule matches it).";
    };

    tokenFile = mkOption {
      type = types.str;
      default = "${cfg.secretsDir}/gitlab-runner.env";
      defaultText = lib.literalExpression ''"''${config.services.hearth.secretsDir}/gitlab-runner.env"'';
      readOnly = true;
      description = ''
        Where `hearth-secrets` writes `CI_SERVER_URL` and `CI_SERVER_TOKEN` from the pool's credentials
        parameter (gitlab-runner's `authenticationTokenConfigFile`). A path under /run, as a string, so
        it is never copied into the Nix store.
      '';
    };

    systemIdFile = mkOption {
      type = types.str;
      default = "${configDir}/.runner_system_id";
      readOnly = true;
      description = ''
        gitlab-runner's system id file, written at boot as `s_` and the first 12 hex digits of SHA-256
        of the instance id (`gitlabSystemId` in packages/core), before gitlab-runner first starts.
      '';
    };

    gracefulTimeout = mkOption {
      type = types.str;
      default = if cfg.maxJobSeconds == null then "6h" else "${toString cfg.maxJobSeconds}s";
      defaultText = lib.literalExpression ''"''${toString config.services.hearth.maxJobSeconds}s"'';
      description = ''
        How long stopping gitlab-runner waits for its running jobs (SIGQUIT) before killing them.
        Finite, so a stuck job cannot hold a terminating instance forever.
      '';
    };

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "Packages on the jobs' `PATH` besides bash, coreutils, git and Nix.";
    };
  };

  config = mkIf gl.enable {
    assertions = [
      {
        assertion = cfg.poolCredentialsParameter != null || cfg.readUserData;
        message = "services.hearth.gitlab is enabled but the pool has no credentials: set services.hearth.poolCredentialsParameter or keep services.hearth.readUserData.";
      }
    ];

    services.hearth.jobUsers.uids = [ gl.uid ];

    users.users.${gl.user} = {
      isSystemUser = true;
      uid = gl.uid;
      group = cfg.jobUsers.group;
      home = home;
      createHome = true;
    };

    services.gitlab-runner = {
      enable = true;
      gracefulTermination = true;
      gracefulTimeout = gl.gracefulTimeout;
      settings = {
        concurrent = cfg.slots;
        check_interval = 3;
        # Loopback only: the agent reads the running jobs from `/debug/jobs/list` here.
        listen_address = "127.0.0.1:9252";
      };
      extraPackages = [
        pkgs.bash
        pkgs.coreutils
        pkgs.git
        config.nix.package
      ]
      ++ gl.extraPackages;
      services.${if cfg.pool == null then "pool" else cfg.pool} = {
        executor = "shell";
        authenticationTokenConfigFile = gl.tokenFile;
        limit = cfg.slots;
        buildsDir = "${home}/builds";
      };
    };

    # A static user with a fixed uid instead of nixpkgs' DynamicUser: the IMDS rule matches it, and
    # the system id file written before the first start stays where gitlab-runner looks.
    systemd.services.gitlab-runner = {
      requires = [ "hearth-secrets.service" ];
      after = [ "hearth-secrets.service" ];
      unitConfig.ConditionPathExists = gl.tokenFile;
      serviceConfig = {
        DynamicUser = lib.mkForce false;
        User = gl.user;
        Group = cfg.jobUsers.group;
        # Other users' processes (another job's command lines) are invisible to jobs.
        ProtectProc = "invisible";
        # Stated here rather than left to the upstream module: a stop (the agent's drain and release)
        # sends SIGQUIT to gitlab-runner alone, which finishes its running jobs; the jobs in its cgroup
        # are killed only once the graceful timeout has passed.
        KillSignal = lib.mkForce "SIGQUIT";
        KillMode = lib.mkForce "mixed";
        TimeoutStopSec = lib.mkForce gl.gracefulTimeout;
      };
    };

    services.hearth.secrets.fragments.gitlab = ''
      install -d -m 0700 -o ${gl.user} -g ${cfg.jobUsers.group} ${configDir}
      system_id="s_$(printf '%s' "$instance_id" | sha256sum | cut -c1-12)"
      printf '%s' "$system_id" > ${gl.systemIdFile}
      chown ${gl.user}:${cfg.jobUsers.group} ${gl.systemIdFile}
      rm -f ${configDir}/config.toml
      rm -f ${gl.tokenFile}
      credentials=$(param "$credentials_parameter")
      if jq -e '.gitlab.token // empty' <<<"$credentials" >/dev/null; then
        jq -r '"CI_SERVER_URL=\(.gitlab.url | @sh)\nCI_SERVER_TOKEN=\(.gitlab.token | @sh)"' \
          <<<"$credentials" > ${gl.tokenFile}.new
        mv ${gl.tokenFile}.new ${gl.tokenFile}
        echo "gitlab-runner: token read from $credentials_parameter; system_id $system_id"
      else
        echo "gitlab-runner: $credentials_parameter has no GitLab token; gitlab-runner stays stopped"
      fi
      unset credentials
    '';
  };
}
