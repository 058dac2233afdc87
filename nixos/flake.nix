{
  description = "Hearth's runner instances: NixOS modules, the runner configurations and their Amazon images";

  # `nix flake lock` pins this (flake.lock); CI checks the locked revision.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # Pool architecture (as infra names it) → Nix system.
      systems = {
        x86_64 = "x86_64-linux";
        aarch64 = "aarch64-linux";
      };
      forAllSystems = lib.genAttrs (lib.attrValues systems);
      runner =
        system:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            ./configuration.nix
            {
              nixpkgs.hostPlatform = system;
              services.hearth.agent.bundle = "${self.packages.${system}.agent}/lib/hearth/agent.mjs";
            }
          ];
        };
    in
    {
      nixosModules = {
        base = ./modules/base.nix;
        gitlab-runner = ./modules/gitlab-runner.nix;
        github-runner = ./modules/github-runner.nix;
        agent = ./modules/agent.nix;
        binary-cache = ./modules/binary-cache.nix;
        default = ./modules/default.nix;
      };

      nixosConfigurations = lib.mapAttrs' (
        arch: system: lib.nameValuePair "runner-${arch}" (runner system)
      ) systems;

      packages = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          arch = lib.head (lib.attrNames (lib.filterAttrs (_: s: s == system) systems));
        in
        {
          # The agent, bundled into one file from the repository's npm workspace.
          agent = pkgs.callPackage ./agent-package.nix { src = ../.; };
          # The Amazon image, built the way current nixpkgs builds images (`image.modules.amazon`);
          # the same as `nixos-rebuild build-image --image-variant amazon`.
          ami = self.nixosConfigurations."runner-${arch}".config.system.build.images.amazon;
        }
      );

      checks = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          # The whole system closure evaluates and builds with the real, locked nixpkgs.
          toplevel = (runner system).config.system.build.toplevel;
          # Boots a runner against a fake control plane, IMDS, Parameter Store and forge.
          runner-vm = pkgs.testers.runNixOSTest (import ./tests/runner.nix { inherit self; });
        }
      );

      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixfmt-rfc-style);
    };
}
