# Hearth's agent (packages/agent, one bundled file) as a systemd service. It heartbeats to the stage,
# starts the GitHub slot units with the configs handed to it, and drains on a spot notice
# (docs/PROTOCOL.md). Its config file, /etc/hearth/agent.json, is generated from these options; what
# is `null` there the agent reads from the instance's user data at boot.
#
# It runs as root: it reads IMDS (job users cannot), signs requests with the instance role, writes
# runner configs under /run and starts, stops and signals system units (the slot runners,
# gitlab-runner). It runs no job code itself.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.services.hearth;
  ag = cfg.agent;
  agentConfig = {
    inherit (cfg)
      stage
      region
      pool
      slots
      agentConfigParameter
      poolCredentialsParameter
      runnerConfigPrefix
      stateDir
      ;
    runnerCommand = if cfg.github.enable then "${cfg.github.package}/bin/Runner.Listener" else null;
    runnerUnit = if cfg.github.enable then "hearth-github-runner-{slot}.service" else null;
    runnerConfigDir = if cfg.github.enable then cfg.github.configDir else null;
    gitlabRunnerService = if cfg.gitlab.enable then "gitlab-runner.service" else null;
    gitlabSystemIdFile = if cfg.gitlab.enable then cfg.gitlab.systemIdFile else null;
    # gitlab-runner's listen address serves the jobs it runs now.
    gitlabJobsUrl =
      if cfg.gitlab.enable then
        "http://${config.services.gitlab-runner.settings.listen_address}/debug/jobs/list"
      else
        null;
    # Where gitlab-runner writes the runner's `id` once registered (beside its system id file).
    gitlabConfigFile =
      if cfg.gitlab.enable then "${builtins.dirOf cfg.gitlab.systemIdFile}/config.toml" else null;
    inherit (cfg) maxJobSeconds;
    pushQueueDir = if cfg.binaryCache.enable then cfg.binaryCache.queueDir else null;
  };
in
{
  imports = [
    ./options.nix
    ./github-runner.nix
    ./gitlab-runner.nix
    ./binary-cache.nix
  ];

  options.services.hearth.agent = {
    enable = mkEnableOption "Hearth's agent (heartbeat, runner hand-off, drain)";

    bundle = mkOption {
      type = types.path;
      description = "The agent bundled into one file (`packages/agent/dist/agent.mjs`).";
    };

    nodejs = mkOption {
      type = types.package;
      default = pkgs.nodejs_22;
      defaultText = lib.literalExpression "pkgs.nodejs_22";
      description = "The Node.js that runs the agent.";
    };

    configFile = mkOption {
      type = types.str;
      default = "/etc/hearth/agent.json";
      readOnly = true;
      description = "The agent's config, generated from these options.";
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      default = agentConfig;
      defaultText = lib.literalExpression "{ /* generated from services.hearth.* */ }";
      description = "What is written to the agent's config file (nixos/README.md describes each key).";
    };
  };

  config = mkIf ag.enable {
    environment.etc."hearth/agent.json".text = builtins.toJSON ag.settings;

    systemd.services.hearth-agent = {
      description = "Hearth agent: heartbeat, runner hand-off, drain";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "hearth-secrets.service"
      ];
      path = [
        pkgs.coreutils
        config.systemd.package
      ];
      restartTriggers = [ config.environment.etc."hearth/agent.json".text ];
      serviceConfig = {
        ExecStart = "${ag.nodejs}/bin/node ${ag.bundle} --config ${ag.configFile}";
        Restart = "always";
        RestartSec = "5s";
        User = "root";
        StateDirectory = "hearth";
        # Stopping the agent must not stop the runners it started (they are units of their own).
        KillMode = "process";
      };
    };
  };
}
