"""Phases and the runner (kubeadm's workflow model, DESIGN section 7).

A command is a literal, ordered tuple of `Phase`s. The runner selects them (`--only`,
`--skip-phases`), skips those whose `run_if` says no, skips a phase recorded as done with the
same inputs once its cheap `confirm` check still holds (the hosts and the provider are the
truth, the state is only a cache), runs the rest and records each finished one in the state,
saved at once, so a run killed at any moment resumes after the last finished phase.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from v6kube import console
from v6kube.errors import Interrupted, PhaseError, UsageError, V6kubeError


@dataclass(frozen=True)
class Phase:
    name: str
    summary: str
    run: Callable[[Any], None]
    # None: always run. Otherwise False skips the phase (e.g. no worker to join).
    run_if: Callable[[Any], bool] | None = None
    # What the phase depends on; a change makes a recorded phase run again.
    inputs: Callable[[Any], Any] | None = None
    # A cheap check that a phase recorded as done is still done on the hosts / at the provider.
    confirm: Callable[[Any], bool] | None = None


def select(phases: Sequence[Phase], only: str | None = None, skip: Iterable[str] = ()) -> list[Phase]:
    """The phases to consider, in order. Unknown names are a usage error listing the valid ones."""
    names = [p.name for p in phases]
    skip = [s.strip() for s in skip if s.strip()]
    wanted = ([only] if only else []) + skip
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise UsageError(f"unknown phase{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                         hint=f"the phases are: {', '.join(names)}")
    if only and skip:
        raise UsageError("--only and --skip-phases cannot be used together")
    return [p for p in phases if (p.name == only if only else p.name not in skip)]


def inputs_digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_phases(phases: Sequence[Phase], context: Any, *, command: str, only: str | None = None,
               skip: Iterable[str] = ()) -> list[str]:
    """Run the selected phases in order against `context` (which has `.state`). Returns the names
    of the phases that ran. A failure becomes a PhaseError naming the phase and how to resume."""
    state = context.state
    ran = []
    for phase in select(phases, only, skip):
        if phase.run_if is not None and not phase.run_if(context):
            console.progress(phase.name, None, "nothing to do")
            continue
        try:
            digest = inputs_digest(phase.inputs(context)) if phase.inputs else ""
            if state.phase_record(phase.name) == digest and (phase.confirm is None or phase.confirm(context)):
                console.progress(phase.name, None, "done already (confirmed)")
                continue
            console.progress(phase.name, None, phase.summary)
            with console.node_lines(phase.name, getattr(context, "node_names", [])):
                phase.run(context)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted during phase {phase.name!r}; the phases before it are saved",
                              hint=f"run 'v6kube {command}' again to resume") from None
        except V6kubeError as exc:
            if exc.exit_code != 1:  # bad input or state: not a step that failed
                raise
            raise PhaseError(phase.name, exc, resume=_resume_hint(command, exc)) from exc
        state.mark_phase_done(phase.name, digest)
        state.save()
        ran.append(phase.name)
    return ran


def _resume_hint(command: str, exc: V6kubeError) -> str:
    hint = f"fix the cause and run 'v6kube {command}' again: finished phases are kept and every step checks first"
    return f"{exc.hint}; then {hint}" if exc.hint else hint
