# Declarations of the upstream NixOS options Hearth's modules set, with nixpkgs' names and types, so
# the modules evaluate with nixpkgs `lib` alone (full nixpkgs cannot be fetched where `npm test` runs).
# Only declarations: no upstream behaviour is imitated. Where nixpkgs' type is richer than `lib` can
# express without nixpkgs (systemd's unit option type), the stub accepts the same values.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  # nixpkgs nixos/modules/config/nix.nix: the settings' atom type.
  confAtom =
    with types;
    nullOr (oneOf [
      bool
      int
      float
      str
      path
      package
    ])
    // {
      description = "Nix config atom (null, bool, int, float, str, path or package)";
    };
  # nixpkgs nixos/lib/systemd-unit-options.nix: unitOption accepts atoms or lists of them.
  unitAtom =
    with types;
    oneOf [
      bool
      int
      str
      path
    ];
  unitOption = types.either unitAtom (types.listOf unitAtom);
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  service = types.submodule {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      wants = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      requires = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      before = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      environment = mkOption {
        type =
          with types;
          attrsOf (
            nullOr (oneOf [
              str
              path
              package
            ])
          );
        default = { };
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      pathConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
    };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    nix = {
      package = mkOption {
        type = types.package;
        default = fakePackage "nix";
      };
      nrBuildUsers = mkOption { type = types.int; };
      extraOptions = mkOption {
        type = types.lines;
        default = "";
      };
      gc.automatic = mkOption {
        type = types.bool;
        default = false;
      };
      settings = mkOption {
        default = { };
        type = types.submodule {
          freeformType = types.attrsOf (types.either confAtom (types.listOf confAtom));
          options = {
            max-jobs = mkOption {
              type = types.either types.int (types.enum [ "auto" ]);
              default = "auto";
            };
            sandbox = mkOption {
              type = types.either types.bool (types.enum [ "relaxed" ]);
              default = true;
            };
            substituters = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            trusted-public-keys = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            trusted-users = mkOption {
              type = types.listOf types.str;
              default = [ "root" ];
            };
            allowed-users = mkOption {
              type = types.listOf types.str;
              default = [ "*" ];
            };
          };
        };
      };
    };

    networking.nftables = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      tables = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule (
            { name, ... }:
            {
              options = {
                enable = mkOption {
                  type = types.bool;
                  default = true;
                };
                name = mkOption {
                  type = types.str;
                  default = name;
                };
                family = mkOption {
                  type = types.enum [
                    "ip"
                    "ip6"
                    "inet"
                    "arp"
                    "bridge"
                    "netdev"
                  ];
                };
                content = mkOption { type = types.lines; };
              };
            }
          )
        );
      };
    };

    environment.etc = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          options = {
            text = mkOption {
              type = types.nullOr types.lines;
              default = null;
            };
            mode = mkOption {
              type = types.str;
              default = "symlink";
            };
          };
        }
      );
    };

    users.users = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = mkOption {
              type = types.bool;
              default = false;
            };
            uid = mkOption {
              type = types.nullOr types.int;
              default = null;
            };
            group = mkOption {
              type = types.str;
              default = "";
            };
            home = mkOption {
              type = types.path;
              default = "/var/empty";
            };
            createHome = mkOption {
              type = types.bool;
              default = false;
            };
          };
        }
      );
    };
    users.groups = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          options.gid = mkOption {
            type = types.nullOr types.int;
            default = null;
          };
        }
      );
    };

    systemd = {
      package = mkOption {
        type = types.package;
        default = fakePackage "systemd";
      };
      services = mkOption {
        type = types.attrsOf service;
        default = { };
      };
      paths = mkOption {
        type = types.attrsOf service;
        default = { };
      };
      tmpfiles.rules = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };

    # nixpkgs nixos/modules/services/continuous-integration/gitlab-runner.nix
    services.gitlab-runner = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      gracefulTermination = mkOption {
        type = types.bool;
        default = false;
      };
      gracefulTimeout = mkOption {
        type = types.str;
        default = "infinity";
      };
      extraPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      settings = mkOption {
        default = { };
        # nixpkgs: submodule with freeformType (pkgs.formats.json { }).type
        type = types.submodule { freeformType = types.attrsOf types.anything; };
      };
      services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              authenticationTokenConfigFile = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              registrationConfigFile = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              executor = mkOption {
                type = types.str;
                default = "docker";
              };
              limit = mkOption {
                type = types.int;
                default = 0;
              };
              buildsDir = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              tagList = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
            };
          }
        );
      };
    };
  };

  # nixpkgs nixos/modules/config/nix.nix sets this default in its config, not in the declaration.
  config.nix.nrBuildUsers = lib.mkDefault 32;

  config._module.args.pkgs = lib.genAttrs [
    "awscli2"
    "bash"
    "coreutils"
    "curl"
    "git"
    "github-runner"
    "jq"
    "nodejs_22"
  ] fakePackage
  // {
    writeShellScript = name: _text: fakePackage name;
  };
}
