# A Hearth runner instance: the Amazon image with every Hearth module on. Stage, pool and parameter
# names come from the user data infra writes into each launch template, so one image serves every pool
# of its architecture.
{
  lib,
  pkgs,
  modulesPath,
  ...
}:
{
  imports = [ "${modulesPath}/virtualisation/amazon-image.nix" ];

  services.hearth = {
    enable = true;
    gitlab.enable = true;
    github.enable = true;
    agent.enable = true;
    binaryCache.enable = true;
  };

  # The user data is JSON for the agent, not a NixOS configuration: nothing is rebuilt at boot.
  virtualisation.amazon-init.enable = false;
  # Graviton instances boot UEFI only.
  ec2.efi = lib.mkDefault pkgs.stdenv.hostPlatform.isAarch64;
  # Session Manager is the only way in (the security group admits nothing inbound).
  services.amazon-ssm-agent.enable = true;
  services.openssh.enable = lib.mkForce false;

  documentation.enable = false;
  system.stateVersion = "25.11";
}
