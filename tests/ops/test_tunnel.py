"""scripts/tunnel.sh: the named tunnel's config, the quick tunnel's command line, and a clear
message when cloudflared is missing. cloudflared itself needs Cloudflare's network, which
this machine cannot reach, so a recording stand-in takes its place where it would run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml


def _run(repo: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(["bash", str(repo / "scripts" / "tunnel.sh"), *args],
                          capture_output=True, text=True, check=False, env=env)


def test_named_tunnel_config_routes_one_hostname_to_the_api(repo: Path) -> None:
    done = _run(repo, "config", "--tunnel-id", "6f1c", "--credentials", "/root/6f1c.json",
                "--hostname", "api.pillsnap.co.kr", "--port", "8001", path=os.environ["PATH"])
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["tunnel"] == "6f1c" and config["credentials-file"] == "/root/6f1c.json"
    assert config["ingress"][0]["hostname"] == "api.pillsnap.co.kr"
    assert config["ingress"][0]["service"] == "http://localhost:8001"
    assert config["ingress"][-1] == {"service": "http_status:404"}  # nothing else leaks out


def test_missing_cloudflared_says_how_to_install_it(repo: Path, tmp_path: Path) -> None:
    done = _run(repo, "quick", path=f"{tmp_path}:/usr/bin:/bin")
    assert done.returncode == 127
    assert "cloudflared is not installed" in done.stderr and "dpkg -i" in done.stderr


def test_quick_tunnel_points_at_the_local_api(repo: Path, tmp_path: Path) -> None:
    fake = tmp_path / "cloudflared"
    fake.write_text('#!/bin/sh\necho "cloudflared $*"\n')
    fake.chmod(0o755)
    done = _run(repo, "quick", "--port", "8123", path=f"{tmp_path}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "cloudflared tunnel --url http://localhost:8123"
    assert _run(repo, "bogus", path=os.environ["PATH"]).returncode == 2
