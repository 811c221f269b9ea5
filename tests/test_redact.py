"""Redaction beyond console lines: multi-line keys, secret shapes, exceptions, tracebacks, state."""

from __future__ import annotations

import json

from v6kube.errors import ProviderError, RemoteCommandFailed
from v6kube.providers.hostkeys import generate_host_key
from v6kube.redact import MASK, Secret, format_exception, redact, register
from v6kube.state import State, new_state_data


def test_each_line_of_a_private_host_key_is_masked():
    _public, private = generate_host_key()
    lines = [line for line in private.reveal().splitlines() if not line.startswith("-----")]
    assert lines
    for line in lines:
        if len(line) >= 16:
            assert line not in redact(f"log: {line}")


def test_a_pem_private_key_is_masked_by_its_shape_alone():
    pem = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
           "AAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIB\n-----END OPENSSH PRIVATE KEY-----")
    text = redact(f"cloud-init: {pem} done")
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in text and text.endswith(" done")
    # a traceback shows it as a repr, with \n escapes, and may cut it short
    assert "b3BlbnNz" not in redact(repr(pem)[:60] + "...")


def test_bootstrap_tokens_are_masked_by_shape_but_the_placeholder_stays():
    assert redact("kubeadm join --token abcdef.0123456789abcdef") == f"kubeadm join --token abcdef.{MASK}"
    assert redact("token v6kube.placeholder00000") == "token v6kube.placeholder00000"


def test_a_registered_bootstrap_token_masks_its_secret_half_alone():
    register("k9z8y7.q1w2e3r4t5y6u7i8")
    assert redact("token-secret: q1w2e3r4t5y6u7i8") == f"token-secret: {MASK}"


def test_certificate_keys_and_auth_headers_are_masked_by_shape():
    key = "0f" * 32
    assert key not in redact(f"kubeadm init phase upload-certs --certificate-key {key}")
    assert key not in redact(f"certificateKey: \"{key}\"")
    assert "sha256:" + key in redact(f"--discovery-token-ca-cert-hash sha256:{key}")  # a public hash stays
    for text in ("X-Auth-Token: tok3n-value-123", "Authorization: Bearer eyJhbGciOi.abc",
                 "client_secret=s3cr3t-client-value&grant_type=client_credentials",
                 '{"access_token": "at-1234567890", "token_type": "Bearer"}'):
        masked = redact(text)
        assert MASK in masked
        assert not any(v in masked for v in ("tok3n-value-123", "eyJhbGciOi", "s3cr3t-client-value", "at-1234567890"))


def test_errors_built_from_api_or_remote_data_are_masked():
    password = Secret("Bgp-Pass-w0rd-77")
    error = ProviderError(f"POST /bgp-configs: 422 {{\"md5\": \"{password.reveal()}\"}}")
    assert password.reveal() not in str(error) and password.reveal() not in error.message
    remote = RemoteCommandFailed("cp-0", f"echo {password.reveal()} | chpasswd", 1, "failed")
    assert password.reveal() not in str(remote)


def test_tracebacks_are_masked_including_causes():
    token = Secret("api-token-for-traceback-0042")
    try:
        try:
            raise ValueError(f"bad answer with {token.reveal()}")
        except ValueError as cause:
            raise RuntimeError(f"wrapped: X-Auth-Token: unregistered-{token.reveal()[:5]}x") from cause
    except RuntimeError as exc:
        text = format_exception(exc)
    assert "Traceback" in text and "ValueError" in text and "RuntimeError" in text
    assert token.reveal() not in text and "unregistered-" not in text


def test_the_state_file_never_holds_a_registered_secret(tmp_path):
    secret = Secret("state-secret-value-991")
    state = State(tmp_path, new_state_data("c", "static"))
    state.set_server("cp-0", note=f"api said {secret.reveal()}")
    state.save()
    text = (tmp_path / "state.json").read_text()
    assert secret.reveal() not in text
    assert json.loads(text)["servers"]["cp-0"]["note"] == f"api said {MASK}"
