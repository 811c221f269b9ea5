"""The phase runner: selection, run_if, resume by recorded inputs and confirmation, errors."""

from __future__ import annotations

import pytest

from v6kube.errors import Interrupted, PhaseError, RemoteCommandFailed, UsageError
from v6kube.state import load_state
from v6kube.workflow import Phase, run_phases, select


class Ctx:
    def __init__(self, state):
        self.state = state
        self.ran: list[str] = []
        self.version = 1
        self.still_done = True


def phases(fail: str | None = None, interrupt: str | None = None):
    def work(name):
        def run(ctx):
            if name == fail:
                raise RemoteCommandFailed("cp-0", "kubeadm init", 1, "boom")
            if name == interrupt:
                raise KeyboardInterrupt
            ctx.ran.append(name)
        return run

    return (
        Phase("a", "first", work("a")),
        Phase("b", "second", work("b"), inputs=lambda ctx: {"v": ctx.version}),
        Phase("c", "third", work("c"), confirm=lambda ctx: ctx.still_done),
        Phase("d", "only when asked", work("d"), run_if=lambda ctx: False),
    )


def test_select_only_skip_and_unknown_names():
    ps = phases()
    assert [p.name for p in select(ps)] == ["a", "b", "c", "d"]
    assert [p.name for p in select(ps, only="b")] == ["b"]
    assert [p.name for p in select(ps, skip=["a", "c"])] == ["b", "d"]
    with pytest.raises(UsageError) as info:
        select(ps, skip=["a", "nope"])
    assert "unknown phase: nope" in info.value.message and "a, b, c, d" in info.value.hint
    with pytest.raises(UsageError, match="together"):
        select(ps, only="a", skip=["b"])


def test_resume_skips_confirmed_phases_and_reruns_changed_or_unconfirmed(tmp_path):
    ctx = Ctx(load_state(tmp_path, "seed", "static"))
    assert run_phases(phases(), ctx, command="create x.yaml") == ["a", "b", "c"]
    assert ctx.ran == ["a", "b", "c"]  # d: run_if said no
    again = Ctx(load_state(tmp_path, "seed", "static"))  # a new run reads the saved state
    assert run_phases(phases(), again, command="create x.yaml") == []
    again.version, again.still_done = 2, False  # b's inputs changed; c is no longer true on the hosts
    assert run_phases(phases(), again, command="create x.yaml") == ["b", "c"]


def test_a_failure_names_the_phase_keeps_finished_ones_and_says_how_to_resume(tmp_path):
    ctx = Ctx(load_state(tmp_path, "seed", "static"))
    with pytest.raises(PhaseError) as info:
        run_phases(phases(fail="b"), ctx, command="create x.yaml")
    assert info.value.phase == "b" and info.value.exit_code == 1
    assert "cp-0" in info.value.message and "v6kube create x.yaml" in info.value.hint
    saved = load_state(tmp_path, "seed", "static")
    assert saved.phase_done("a") and not saved.phase_done("b")


def test_interrupt_is_exit_130_with_finished_phases_saved(tmp_path):
    ctx = Ctx(load_state(tmp_path, "seed", "static"))
    with pytest.raises(Interrupted) as info:
        run_phases(phases(interrupt="c"), ctx, command="create x.yaml")
    assert info.value.exit_code == 130 and "'c'" in info.value.message
    assert sorted(load_state(tmp_path, "seed", "static").data["phases_done"]) == ["a", "b"]


def test_create_help_lists_the_phases_in_order():
    from v6kube.cli import CREATE_HELP
    from v6kube.phases import CREATE_PHASES

    listed = [line.split()[0] for line in CREATE_HELP.splitlines() if line.startswith("  ") and line.split()]
    assert listed == [p.name for p in CREATE_PHASES]
