# Every Hearth module: a runner instance imports this and turns on what its pools use.
{
  imports = [
    ./base.nix
    ./gitlab-runner.nix
    ./github-runner.nix
    ./agent.nix
    ./binary-cache.nix
  ];
}
