# The base of a Hearth runner instance: Nix sized to the job slots, a warm store kept by disk budget,
# job users that cannot reach IMDS, and `hearth-secrets`, which fetches what the instance needs at boot.
#
# The Amazon image itself (`virtualisation/amazon-image.nix`) is imported by the configuration
# (../configuration.nix), not here, so this module evaluates with nixpkgs `lib` alone.
#
# IMDS: instances are launched with IMDSv2 only and a PUT response hop limit of 1 (infra's launch
# template: `httpTokens: required`, `httpPutResponseHopLimit: 1`), so no container or forwarded hop gets a
# token. The hop limit does not stop local users; the nftables rule below does: a job's processes
# cannot open a socket to 169.254.169.254, so a job cannot take the instance's role.
#
# /etc/machine-id is never baked into the image: systemd writes a fresh one at first boot. An
# instance that resumes from the warm pool keeps its own; two instances of one image never share one
# (journald, DHCP client ids and gitlab-runner would otherwise see one machine).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkDefault mkIf mkOption types;
  cfg = config.services.hearth;
  gib = n: n * 1024 * 1024 * 1024;
  shellValue = value: fallback: if value == null then fallback else lib.escapeShellArg value;
  imds = "169.254.169.254";
  imds6 = "fd00:ec2::254";
  uidSet = "{ ${lib.concatMapStringsSep ", " toString cfg.jobUsers.uids} }";
in
{
  imports = [ ./options.nix ];

  options.services.hearth.nix = {
    maxJobs = mkOption {
      type = types.ints.positive;
      default = lib.max 1 cfg.slots;
      defaultText = lib.literalExpression "config.services.hearth.slots";
      description = "Nix's `max-jobs` and the number of build users; at least the job slots.";
    };
    minFree = mkOption {
      type = types.ints.unsigned;
      default = gib 10;
      defaultText = lib.literalExpression "10 GiB";
      description = ''
        Bytes: when free disk falls below this during a build, Nix collects garbage until `maxFree`
        is free. Garbage is collected by disk budget, never by timer, so a warm store stays warm.
      '';
    };
    maxFree = mkOption {
      type = types.ints.unsigned;
      default = gib 30;
      defaultText = lib.literalExpression "30 GiB";
      description = "Bytes free that a collection started by `minFree` stops at.";
    };
  };

  options.services.hearth.imds.blockJobUsers = mkOption {
    type = types.bool;
    default = true;
    description = "Drop job users' traffic to the instance metadata service (IPv4 and IPv6).";
  };

  config = lib.mkMerge [
    {
      assertions = map (part: {
        assertion = (cfg.${part}.enable or false) -> cfg.enable;
        message = "services.hearth.${part}.enable needs services.hearth.enable (the job users, hearth-secrets and Nix settings it relies on).";
      }) [ "gitlab" "github" "agent" "binaryCache" ];
    }
    (mkIf cfg.enable {
      assertions = [
        {
          assertion = cfg.slots >= 1;
          message = "services.hearth.slots must be at least 1 (it is ${toString cfg.slots}).";
        }
        {
          assertion =
            let
              maxJobs = config.nix.settings.max-jobs;
            in
            builtins.isInt maxJobs && maxJobs >= cfg.slots;
          message = "nix.settings.max-jobs (${toString config.nix.settings.max-jobs}) must be a number of at least services.hearth.slots (${toString cfg.slots}): every slot may build at once.";
        }
        {
          assertion = cfg.nix.maxFree > cfg.nix.minFree;
          message = "services.hearth.nix.maxFree must be more than services.hearth.nix.minFree.";
        }
        {
          assertion = !(config.environment.etc ? "machine-id");
          message = "/etc/machine-id must not be baked into the image: systemd writes one per instance at first boot.";
        }
        {
          assertion = !config.nix.gc.automatic;
          message = "nix.gc.automatic would empty the warm store on a timer; Hearth collects by disk budget (services.hearth.nix.minFree).";
        }
      ];

      users.groups.${cfg.jobUsers.group}.gid = cfg.jobUsers.gid;

      # /run/hearth holds the runner configs the agent writes (runners/<slot>/jitconfig): root only below.
      systemd.tmpfiles.rules = [
        "d /run/hearth 0755 root root -"
        "d /run/hearth/runners 0700 root root -"
        "d ${cfg.stateDir} 0755 root root -"
      ];

      nix.gc.automatic = mkDefault false;
      nix.nrBuildUsers = cfg.nix.maxJobs;
      nix.settings = {
        experimental-features = [
          "nix-command"
          "flakes"
        ];
        sandbox = true;
        # Job users may use the daemon but are not trusted: a job cannot add substituters or keys.
        trusted-users = [ "root" ];
        allowed-users = [
          "root"
          "@${cfg.jobUsers.group}"
          "@wheel"
        ];
        max-jobs = cfg.nix.maxJobs;
        keep-outputs = true;
        keep-derivations = true;
        min-free = cfg.nix.minFree;
        max-free = cfg.nix.maxFree;
      };

      # Numeric uids and gid: NixOS checks the ruleset at build time, where the job users do not exist.
    networking.nftables.enable = true;
      networking.nftables.tables.hearth-imds = mkIf cfg.imds.blockJobUsers {
        family = "inet";
        content =
          let
            rules = [
              "meta skgid ${toString cfg.jobUsers.gid} ip daddr ${imds} drop"
              "meta skgid ${toString cfg.jobUsers.gid} ip6 daddr ${imds6} drop"
            ]
            ++ lib.optionals (cfg.jobUsers.uids != [ ]) [
              "meta skuid ${uidSet} ip daddr ${imds} drop"
              "meta skuid ${uidSet} ip6 daddr ${imds6} drop"
            ];
          in
          lib.concatStringsSep "\n" (
            [
              "chain output {"
              "  type filter hook output priority filter; policy accept;"
            ]
            ++ map (rule: "  ${rule}") rules
            ++ [ "}" ]
          )
          + "\n";
      };

      systemd.services.hearth-secrets = {
        description = "Hearth: fetch this instance's credentials into /run/secrets";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        before = [ "nix-daemon.service" ];
        path = [
          pkgs.awscli2
          pkgs.coreutils
          pkgs.curl
          pkgs.jq
        ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          # IMDS or Parameter Store may be slow right after boot.
          Restart = "on-failure";
          RestartSec = "5s";
        };
        # Values read here are kept in variables and files under /run, never echoed: the journal sees
        # parameter names only.
        script = ''
          set -euo pipefail
          umask 077
          imds_token=$(curl -fsS --retry 10 --retry-connrefused -X PUT \
            -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://${imds}/latest/api/token)
          imds() { curl -fsS -H "X-aws-ec2-metadata-token: $imds_token" "http://${imds}/latest/$1"; }
          instance_id=$(imds meta-data/instance-id)
          ${
            if cfg.readUserData then
              ''user_data=$(imds user-data 2>/dev/null || echo '{}')''
            else
              "user_data='{}'"
          }
          from_user_data() { jq -r --arg k "$1" '.hearth[$k] // empty' <<<"$user_data" 2>/dev/null || true; }
          region=${shellValue cfg.region "$(imds meta-data/placement/region)"}
          stage=${shellValue cfg.stage "$(from_user_data stage)"}
          pool=${shellValue cfg.pool "$(from_user_data pool)"}
          agent_config_parameter=${shellValue cfg.agentConfigParameter "$(from_user_data agentConfigParameter)"}
          credentials_parameter=${shellValue cfg.poolCredentialsParameter "$(from_user_data credentialsParameter)"}
          param() {
            aws ssm get-parameter --region "$region" --name "$1" --with-decryption \
              --query Parameter.Value --output text
          }
          export instance_id region stage pool agent_config_parameter credentials_parameter
          install -d -m 0711 ${cfg.secretsDir}
          install -d -m 0755 /run/hearth
          echo "instance $instance_id, stage $stage, pool $pool"
          ${lib.concatStringsSep "\n" (lib.attrValues cfg.secrets.fragments)}
        '';
      };
    })
  ];
}
