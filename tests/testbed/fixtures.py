"""pytest fixtures for the testbed. In CI (CI=true) a testbed that cannot run is a failure, not a skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from testbed.lab import Lab, missing_prerequisites


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    """Skip, except in CI, where a testbed test that cannot run is a failure."""
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def lab():
    """A lab (bridge + BIRD router) for the whole session; tests add their own nodes."""
    problems = missing_prerequisites()
    if problems:
        unavailable("testbed unavailable: " + "; ".join(problems))
    the_lab = Lab.create()
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture
def ssh_options(lab: Lab, tmp_path: Path):
    """SSH options for the lab's nodes: the lab's client key, short deadlines, logs in tmp_path/logs."""
    from v6kube.ssh import SSHOptions

    return SSHOptions(private_key=lab.client_key, port=22, connect_timeout=15, command_timeout=120,
                      log_dir=tmp_path / "logs")


@pytest.fixture
def new_node(lab: Lab):
    """A factory for fresh nodes (Lab.add_node arguments); they are removed after the test."""
    created = []

    def make(**kwargs):
        node = lab.add_node(**kwargs)
        created.append(node)
        return node

    yield make
    for node in created:
        lab.remove_node(node)


@pytest.fixture
def sudo_installed():
    """The sudo tests log in as non-root users and need sudo (apt-get install sudo)."""
    if shutil.which("sudo") is None:
        unavailable("sudo is not installed (apt-get install sudo)")
