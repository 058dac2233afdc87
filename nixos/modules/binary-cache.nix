# The stage's Nix binary cache (an S3 bucket): every instance substitutes from it as well as from
# cache.nixos.org, so a fresh spot instance is not fully cold, and pushes what it builds to it, signed.
#
# Pushing never blocks a build: Nix's `post-build-hook` runs inside the build's critical path, so it
# only writes the built paths to a file in the queue folder; `hearth-cache-push` drains the queue with
# `nix copy`. The agent reports the queue's depth (files in it) and lag (age of the oldest).
#
# The signing key is read at boot by `hearth-secrets` into /run/secrets (tmpfs), never into the store.
# The cache's URL is the agent config parameter's `binaryCache` unless set here; it reaches Nix through
# a file under /run that nix.conf includes, so one image serves every stage.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.services.hearth;
  bc = cfg.binaryCache;
  runtimeConf = "/run/hearth/nix-cache.conf";
  signingKeyFile = "${cfg.secretsDir}/nix-signing-key";
  cacheUrlFile = "/run/hearth/binary-cache-url";
  nixKey = "${config.nix.package}/bin/nix --extra-experimental-features nix-command key";
  enqueue = pkgs.writeShellScript "hearth-enqueue-build" ''
    # Nix runs this after every build with the built paths in $OUT_PATHS; it must be quick.
    [ -n "''${OUT_PATHS:-}" ] || exit 0
    entry=${bc.queueDir}/$(${pkgs.coreutils}/bin/date +%s%N).$$
    printf '%s\n' $OUT_PATHS > "$entry.tmp" && ${pkgs.coreutils}/bin/mv "$entry.tmp" "$entry"
  '';
in
{
  imports = [ ./options.nix ];

  options.services.hearth.binaryCache = {
    enable = mkEnableOption "the stage's binary cache: substitute from it, push builds to it";

    url = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "s3://hearth-production-binarycache?region=us-east-1";
      description = ''
        The cache's store URL; `null` (the default) takes `binaryCache` from the stage's agent config
        parameter at boot.
      '';
    };

    publicKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "hearth-production-1:AbCd…=" ];
      description = "Public keys of the stage's cache signing key, trusted besides cache.nixos.org's.";
    };

    signingKeyParameter = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/hearth/production/binary-cache/signing-key";
      description = ''
        The SSM SecureString holding the secret signing key (`npm run cache-key` sets it); `null` (the
        default) is `/hearth/<stage>/binary-cache/signing-key`. Without a readable key, or with one Nix
        does not take (the placeholder a stage holds until then), builds are queued and not pushed.
      '';
    };

    queueDir = mkOption {
      type = types.str;
      default = "/var/lib/hearth/push-queue";
      description = ''
        The push queue: one file of store paths per build, oldest first. It survives a stop into the
        warm pool, so nothing built is lost.
      '';
    };
  };

  config = mkIf bc.enable {
    nix.settings = {
      substituters = lib.optional (bc.url != null) bc.url ++ [ "https://cache.nixos.org/" ];
      trusted-public-keys = [
        "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
      ]
      ++ bc.publicKeys;
      post-build-hook = "${enqueue}";
    };
    # Read if present: `extra-substituters` for the stage's cache, written at boot.
    nix.extraOptions = ''
      !include ${runtimeConf}
    '';

    systemd.tmpfiles.rules = [ "d ${bc.queueDir} 0700 root root -" ];

    # Not fatal: without the cache an instance still runs jobs, only colder.
    services.hearth.secrets.fragments.binaryCache = ''
      cache_url=${
        if bc.url != null then
          lib.escapeShellArg bc.url
        else
          ''$(param "$agent_config_parameter" | jq -r '.binaryCache // empty' || true)''
      }
      printf '%s' "$cache_url" > ${cacheUrlFile}
      : > ${runtimeConf}
      ${lib.optionalString (bc.url == null) ''
        [ -z "$cache_url" ] || printf 'extra-substituters = %s\n' "$cache_url" >> ${runtimeConf}
      ''}
      signing_key_parameter=${
        if bc.signingKeyParameter != null then
          lib.escapeShellArg bc.signingKeyParameter
        else
          ''"/hearth/$stage/binary-cache/signing-key"''
      }
      rm -f ${signingKeyFile}
      # A stage deployed without `npm run cache-key` holds a placeholder: whatever Nix does not take
      # as a secret key is no key. Builds are then queued, not pushed, and this is said once, here.
      if ! param "$signing_key_parameter" > ${signingKeyFile}.new 2>/dev/null; then
        echo "binary cache: $signing_key_parameter is not readable; builds are queued, not pushed"
      elif ! public_key=$(${nixKey} convert-secret-to-public < ${signingKeyFile}.new 2>/dev/null); then
        echo "binary cache: $signing_key_parameter holds no signing key (set one with npm run cache-key); builds are queued, not pushed"
      else
        mv ${signingKeyFile}.new ${signingKeyFile}
        # The stage's cache is trusted by the key that signs it.
        printf 'extra-trusted-public-keys = %s\n' "$public_key" >> ${runtimeConf}
        echo "binary cache: signing key read from $signing_key_parameter"
      fi
      rm -f ${signingKeyFile}.new
    '';

    systemd.paths.hearth-cache-push = {
      description = "Hearth: push queued builds to the binary cache";
      wantedBy = [ "multi-user.target" ];
      pathConfig.DirectoryNotEmpty = bc.queueDir;
    };

    systemd.services.hearth-cache-push = {
      description = "Hearth: push queued builds to the stage's binary cache";
      after = [
        "hearth-secrets.service"
        "nix-daemon.service"
      ];
      requires = [ "hearth-secrets.service" ];
      unitConfig.ConditionPathExists = [
        signingKeyFile
        cacheUrlFile
      ];
      path = [
        config.nix.package
        pkgs.coreutils
      ];
      serviceConfig = {
        Type = "oneshot";
        # A failed push (network, S3) is retried; the queue keeps the paths meanwhile.
        Restart = "on-failure";
        RestartSec = "30s";
        Nice = 10;
        IOSchedulingClass = "idle";
      };
      script = ''
        set -euo pipefail
        url=$(cat ${cacheUrlFile})
        [ -n "$url" ] || { echo "no binary cache configured"; exit 0; }
        case "$url" in *\?*) sep='&' ;; *) sep='?' ;; esac
        for entry in $(ls -1 ${bc.queueDir} | grep -v '\.tmp$' | sort); do
          # Paths collected since they were built are skipped, not retried forever.
          mapfile -t paths < <(while read -r p; do [ -e "$p" ] && echo "$p"; done < ${bc.queueDir}/"$entry")
          if [ "''${#paths[@]}" -gt 0 ]; then
            nix copy --to "$url''${sep}secret-key=${signingKeyFile}" "''${paths[@]}"
          fi
          rm -f ${bc.queueDir}/"$entry"
        done
      '';
    };
  };
}
