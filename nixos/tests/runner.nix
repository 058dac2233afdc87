# NixOS VM test (`nix flake check ./nixos`; not part of `npm test`): a runner instance boots against a
# fake cloud on the same machine — IMDS at 169.254.169.254, Parameter Store and the control plane's
# heartbeat route — and a fake forge that each started runner announces itself to. It checks:
# hearth-secrets writes the GitLab system id; the agent heartbeats; a JIT runner unit starts for the
# slot the control plane handed a config to, and the config file is consumed; a drain stops it; a job
# user cannot reach IMDS; a build is queued and pushed, signed, to the binary cache.
{ self }:
{ lib, pkgs, ... }:
let
  instanceId = "i-0123456789abcdef0";
  stage = "vmtest";
  pool = "x86_64";
  # Parameter Store, IMDS and the control plane in one small server: state in memory, a few routes
  # to drive and read it from the test script.
  fakeCloud = pkgs.writeText "fake-cloud.py" ''
    import json, subprocess, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    INSTANCE = "${instanceId}"
    signing_key = subprocess.run(
        ["${pkgs.nix}/bin/nix", "--extra-experimental-features", "nix-command",
         "key", "generate-secret", "--key-name", "hearth-vmtest-1"],
        check=True, capture_output=True, text=True).stdout
    parameters = {
        "/hearth/${stage}/agent": json.dumps({
            "heartbeatUrl": "http://127.0.0.1/agent/heartbeat",
            "binaryCache": "file:///var/cache/hearth-binary-cache"}),
        "/hearth/${stage}/pools/${pool}/credentials": json.dumps({"gitlab": None}),
        "/hearth/${stage}/binary-cache/signing-key": signing_key,
        "/hearth/${stage}/runners/" + INSTANCE + "/0-30114": "ZmFrZS1qaXQtY29uZmln",
    }
    state = {"heartbeats": [], "drain": False, "forge": []}
    user_data = json.dumps({"hearth": {
        "version": 1, "stage": "${stage}", "region": "us-east-1", "pool": "${pool}", "slots": 2,
        "agentConfigParameter": "/hearth/${stage}/agent",
        "credentialsParameter": "/hearth/${stage}/pools/${pool}/credentials",
        "runnerConfigPrefix": "/hearth/${stage}/runners"}})

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body, kind="application/json"):
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_PUT(self):
            if self.path == "/latest/api/token":
                return self.reply(200, "imds-token", "text/plain")
            self.reply(404, {})

        def do_GET(self):
            if self.path.startswith("/latest/"):
                if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
                    return self.reply(401, "", "text/plain")
                meta = {"/latest/meta-data/instance-id": INSTANCE,
                        "/latest/meta-data/placement/region": "us-east-1",
                        "/latest/user-data": user_data}
                if self.path in meta:
                    return self.reply(200, meta[self.path], "text/plain")
                return self.reply(404, "", "text/plain")
            if self.path == "/test/state":
                return self.reply(200, state)
            self.reply(404, {})

        def do_POST(self):
            raw = self.body()
            if self.path == "/test/drain":
                state["drain"] = True
                return self.reply(200, {})
            if self.path == "/forge/runner-started":
                state["forge"].append(json.loads(raw))
                return self.reply(200, {})
            if self.path == "/agent/heartbeat":
                beat = json.loads(raw)
                state["heartbeats"].append(beat)
                reported = {s["slot"] for s in beat.get("slotRunners", [])}
                configs = [] if state["drain"] or 0 in reported else [{
                    "slot": 0, "runnerId": 30114, "name": "hearth-" + INSTANCE + "-0",
                    "parameter": "/hearth/${stage}/runners/" + INSTANCE + "/0-30114"}]
                return self.reply(200, {"status": "ok", "protocol": 1, "instance": INSTANCE,
                                        "runner": "draining" if state["drain"] else "ready",
                                        "instructions": {"runnerConfigs": configs,
                                                         "drain": state["drain"], "cancel": []}})
            target = self.headers.get("X-Amz-Target", "")
            request = json.loads(raw or b"{}")
            name = request.get("Name")
            if target == "AmazonSSM.GetParameter":
                if name not in parameters:
                    return self.reply(400, {"__type": "ParameterNotFound", "message": "not found"},
                                      "application/x-amz-json-1.1")
                return self.reply(200, {"Parameter": {"Name": name, "Type": "SecureString",
                                                      "Value": parameters[name], "Version": 1}},
                                  "application/x-amz-json-1.1")
            if target == "AmazonSSM.DeleteParameter":
                parameters.pop(name, None)
                return self.reply(200, {}, "application/x-amz-json-1.1")
            self.reply(400, {"__type": "UnknownOperation"}, "application/x-amz-json-1.1")

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()
  '';
  # A stand-in for GitHub's runner: announces itself to the fake forge with the config it was given,
  # then listens until stopped.
  fakeRunner = pkgs.writeShellScriptBin "Runner.Listener" ''
    [ "$1" = run ] && [ "$2" = --jitconfig ] && [ -n "$3" ] || exit 2
    ${pkgs.curl}/bin/curl -fsS -X POST -H 'Content-Type: application/json' \
      -d "{\"user\": \"$(id -un)\", \"config\": \"$3\"}" http://127.0.0.1/forge/runner-started
    exec sleep infinity
  '';
  awsEnvironment = {
    AWS_ENDPOINT_URL = "http://127.0.0.1";
    AWS_ACCESS_KEY_ID = "AKIDVMTEST";
    AWS_SECRET_ACCESS_KEY = "vmtest";
    AWS_REGION = "us-east-1";
  };
in
{
  name = "hearth-runner";

  nodes.runner =
    { ... }:
    {
      imports = [ self.nixosModules.default ];
      services.hearth = {
        enable = true;
        slots = 2;
        gitlab.enable = true;
        github.enable = true;
        github.package = fakeRunner;
        agent.enable = true;
        agent.bundle = "${self.packages.${pkgs.stdenv.hostPlatform.system}.agent}/lib/hearth/agent.mjs";
        binaryCache.enable = true;
      };
      # IMDS's address, served by the fake cloud on this machine.
      networking.interfaces.lo.ipv4.addresses = [
        {
          address = "169.254.169.254";
          prefixLength = 32;
        }
      ];
      systemd.services.fake-cloud = {
        wantedBy = [ "multi-user.target" ];
        before = [
          "hearth-secrets.service"
          "hearth-agent.service"
        ];
        after = [ "network.target" ];
        serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 ${fakeCloud}";
      };
      systemd.services.hearth-secrets.environment = awsEnvironment;
      systemd.services.hearth-agent.environment = awsEnvironment;
      environment.systemPackages = [ pkgs.curl ];
      virtualisation.memorySize = 2048;
    };

  testScript = ''
    import hashlib, json

    def state():
        return json.loads(runner.succeed("curl -fsS http://127.0.0.1/test/state"))

    runner.wait_for_unit("fake-cloud.service")
    runner.wait_for_unit("hearth-secrets.service")

    with subtest("the GitLab system id comes from the instance id; no token, no gitlab-runner"):
        expected = "s_" + hashlib.sha256(b"${instanceId}").hexdigest()[:12]
        got = runner.succeed("cat /var/lib/gitlab-runner/.gitlab-runner/.runner_system_id")
        assert got == expected, f"system id {got!r}, expected {expected!r}"
        runner.fail("systemctl is-active gitlab-runner.service")

    with subtest("the agent heartbeats"):
        runner.wait_for_unit("hearth-agent.service")
        runner.wait_until_succeeds(
            "curl -fsS http://127.0.0.1/test/state | ${pkgs.jq}/bin/jq -e '.heartbeats | length >= 1'"
        )
        beat = state()["heartbeats"][0]
        assert beat["instanceId"] == "${instanceId}", beat
        assert beat["protocol"] == 1, beat

    with subtest("a JIT runner starts for the slot the control plane handed a config to"):
        runner.wait_for_unit("hearth-github-runner-0.service")
        runner.wait_until_succeeds(
            "curl -fsS http://127.0.0.1/test/state | ${pkgs.jq}/bin/jq -e '.forge | length == 1'"
        )
        started = state()["forge"][0]
        assert started == {"user": "hearth-job-0", "config": "ZmFrZS1qaXQtY29uZmln"}, started
        runner.succeed("test ! -e /run/hearth/runners/0/jitconfig")
        runner.fail("systemctl is-active hearth-github-runner-1.service")

    with subtest("a job user cannot reach IMDS; root can"):
        runner.succeed("curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token")
        runner.fail(
            "runuser -u hearth-job-1 -- curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token"
        )

    with subtest("a build is queued by the post-build hook and pushed, signed"):
        runner.succeed(
            "nix-build --no-out-link -E 'derivation { name = \"hearth-vmtest\"; system = builtins.currentSystem;"
            " builder = \"/bin/sh\"; args = [ \"-c\" \"echo built > $out\" ]; }'"
        )
        runner.wait_until_succeeds("grep -l '^Sig: hearth-vmtest-1:' /var/cache/hearth-binary-cache/*.narinfo")
        runner.wait_until_succeeds("test -z \"$(ls -A /var/lib/hearth/push-queue)\"")

    with subtest("a drain stops the slot's runner"):
        runner.succeed("curl -fsS -X POST http://127.0.0.1/test/drain")
        runner.wait_until_fails("systemctl is-active hearth-github-runner-0.service")
        runner.wait_until_succeeds(
            "curl -fsS http://127.0.0.1/test/state | ${pkgs.jq}/bin/jq -e '.heartbeats[-1].runner == \"draining\"'"
        )
  '';
}
