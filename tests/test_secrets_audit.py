"""Secrets audit for `plan`: distinctive secret values in the environment (as create holds them,
registered as Secrets), --debug, every output form, and forced failures whose errors carry API and
remote data; then every byte printed and every file written is scanned: zero occurrences.

The failures are forced by replacing planner.render_files in the child process with one that raises
what a provider or a node would (the message holds every secret, as an API echo might)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "METAL_AUTH_TOKEN": "AUDITmetalTOKEN7d3f9a1c",
    "PNAP_CLIENT_SECRET": "AUDITpnapCLIENTsecret88",
    "V6KUBE_BGP_PASSWORD": "AUDITbgpPW4711",
    "AUDIT_BOOTSTRAP_TOKEN": "q7w8e9.r1t2y3u4i5o6p7a8",
    "AUDIT_CERTIFICATE_KEY": "4f" * 32,
    "AUDIT_HOST_KEY": ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
                       "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                       "QyNTUxOQAAACBHuditHOSTkeyLINEtwoAUDITAUDITAUDITAUDITAUDITAUDITAUDITAA\n"
                       "-----END OPENSSH PRIVATE KEY-----\n"),
}
# Secret-shaped values nobody registered: masked by their shape alone.
UNREGISTERED = {
    "bootstrap token": "z1x2c3.v4b5n6m7q8w9e0r1",
    "PEM body line": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCunregistered",
    "certificate key": "9e" * 32,
    "auth header": "UnregisteredHeaderToken0099",
}

CHILD = """
import os, sys
from v6kube import cli, planner
from v6kube.errors import ProviderError, RemoteCommandFailed
from v6kube.providers.packet.client import token_from_env
from v6kube.redact import Secret

token = token_from_env(os.environ)                    # as the Packet provider reads it
held = {name: Secret(os.environ[name]) for name in (
    "PNAP_CLIENT_SECRET", "V6KUBE_BGP_PASSWORD", "AUDIT_BOOTSTRAP_TOKEN", "AUDIT_CERTIFICATE_KEY", "AUDIT_HOST_KEY")}
values = [token.reveal()] + [s.reveal() for s in held.values()]
shaped = os.environ["AUDIT_UNREGISTERED"].split(",")
echo = ('{"errors": ["md5 ' + values[2] + ' rejected"], "token": "' + values[0] + '", "key": ' + repr(values[5])
        + ', "client_secret": "' + values[1] + '"} kubeadm join --token ' + values[3]
        + ' --certificate-key ' + values[4]
        + ' | unregistered: ' + shaped[0] + ' -----BEGIN RSA PRIVATE KEY-----\\n' + shaped[1]
        + '\\n-----END RSA PRIVATE KEY----- --certificate-key ' + shaped[2] + ' X-Auth-Token: ' + shaped[3])
mode = os.environ["AUDIT_MODE"]

def failing(plan, secrets=None):
    if mode == "provider":
        raise ProviderError("POST /projects/p/bgp-configs: 422 " + echo, status=422)
    if mode == "remote":
        raise RemoteCommandFailed("cp-0", "kubeadm join --token " + values[3], 1, echo)
    if mode == "internal":
        try:
            raise ValueError(echo)
        except ValueError as cause:
            raise RuntimeError("while rendering: " + echo) from cause
    return original(plan, secrets)

original = planner.render_files
planner.render_files = failing
sys.argv = ["v6kube", *sys.argv[1:]]
cli.main()
"""


def cluster_file(tmp_path: Path, extra: dict | None = None) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "static.yaml").read_text())
    doc["provider"]["bgp_password_env"] = "V6KUBE_BGP_PASSWORD"
    doc.update(extra or {})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(tmp_path: Path, mode: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, **SECRETS, AUDIT_MODE=mode, AUDIT_UNREGISTERED=",".join(UNREGISTERED.values()))
    return subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, env=env,
                          cwd=tmp_path, timeout=120)


def leaks(blob: bytes) -> list[str]:
    text = blob.decode("utf-8", "replace")
    found = []
    for name, value in {**SECRETS, **{f"unregistered {k}": v for k, v in UNREGISTERED.items()}}.items():
        needles = [value] + [line for line in value.splitlines() if len(line) >= 16 and "-----" not in line]
        if name in ("AUDIT_BOOTSTRAP_TOKEN", "unregistered bootstrap token"):
            needles.append(value.split(".")[1])
        found += [name for needle in needles if needle in text]
    return found


@pytest.mark.parametrize("mode,code", [("none", 0), ("provider", 1), ("remote", 1), ("internal", 1)])
@pytest.mark.parametrize("output", ["text", "json"])
def test_plan_never_leaks_a_secret(tmp_path, mode, code, output):
    out, state = tmp_path / "plan", tmp_path / "state"
    result = run(tmp_path, mode, "plan", cluster_file(tmp_path), "--out", out, "--output", output,
                 "--debug", "--state-dir", state)
    assert result.returncode == code, result.stderr.decode()
    if mode != "none":
        assert b"Traceback" in result.stderr and b"***" in result.stderr  # the failure was shown, masked
    assert leaks(result.stdout) == [] and leaks(result.stderr) == []
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in ("cluster.yaml",):
            assert leaks(path.read_bytes()) == [], path


def test_a_secret_written_in_the_cluster_file_is_never_echoed(tmp_path):
    path = cluster_file(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["provider"]["auth_token"] = SECRETS["METAL_AUTH_TOKEN"]
    doc["nodes"][0]["password"] = SECRETS["V6KUBE_BGP_PASSWORD"]
    path.write_text(yaml.safe_dump(doc))
    result = run(tmp_path, "none", "--debug", "plan", path, "-o", "json")
    assert result.returncode == 2
    assert b"provider.auth_token: secrets must not be written" in result.stderr
    assert leaks(result.stdout + result.stderr) == []
