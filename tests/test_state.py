"""The state file: atomic 0600 writes, versioning, the lock between two runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from v6kube.errors import StateError
from v6kube.state import SCHEMA_VERSION, default_state_dir, load_state, locked


def test_default_state_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir("seed") == tmp_path / "v6kube" / "seed"
    assert default_state_dir("seed", tmp_path / "x") == tmp_path / "x"


def test_round_trip_and_mode(tmp_path):
    state = load_state(tmp_path, "seed", "packet")
    state.set_server("cp-0", id="abc", ipv6="2001:db8::3")
    state.pin_host_key("cp-0", "ssh-ed25519 AAAAC3", "provisioned")
    state.mark_phase_done("provision")
    state.mark_phase_done("provision")
    state.save()
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o600
    again = load_state(tmp_path, "seed", "packet", must_exist=True)
    assert again.server("cp-0") == {"id": "abc", "ipv6": "2001:db8::3"}
    assert again.host_key("cp-0") == "ssh-ed25519 AAAAC3"
    assert again.data["phases_done"] == {"provision": ""}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp files left behind


def test_missing_newer_and_foreign_state_are_refused(tmp_path):
    with pytest.raises(StateError) as info:
        load_state(tmp_path, "seed", "packet", must_exist=True)
    assert info.value.exit_code == 3
    (tmp_path / "state.json").write_text(json.dumps({"version": SCHEMA_VERSION + 1, "cluster": "seed"}))
    with pytest.raises(StateError, match="newer"):
        load_state(tmp_path, "seed", "packet")
    (tmp_path / "state.json").write_text(json.dumps({"version": SCHEMA_VERSION, "cluster": "other"}))
    with pytest.raises(StateError, match="belongs to cluster 'other'"):
        load_state(tmp_path, "seed", "packet")


def _hold_lock(directory, ready, release):
    with locked(directory):
        ready.set()
        release.wait(10)


def test_a_second_run_cannot_take_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(StateError, match=f"locked by pid {holder.pid}") as info:
            with locked(tmp_path):
                pass
        assert info.value.exit_code == 3
    finally:
        release.set()
        holder.join(10)
    with locked(tmp_path):  # free again once the holder is gone
        pass
