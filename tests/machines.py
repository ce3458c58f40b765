"""Shared pieces of the state-machine tests (tests/tui/test_queue_machine.py,
tests/store/test_store_machine.py): run counters printed at the end of each test, and a session id
whose process is gone."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections import Counter
from functools import cache

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

SHORT = settings(max_examples=80, stateful_step_count=40, deadline=None)
"""The budget of an ordinary run: each machine well under 15 s on two cores."""
LONG = settings(max_examples=400, stateful_step_count=60, deadline=None)
"""The budget under `--slow`."""


class Counted(RuleBasedStateMachine):
    """A machine that counts what it ran: sequences, steps (rules), invariant checks."""

    counts: Counter[str] = Counter()

    def __init__(self) -> None:
        super().__init__()
        type(self).counts["sequences"] += 1

    def step(self, name: str) -> None:
        """Count one event (a rule, or what it did: a write made, a fetch read...)."""
        type(self).counts["events"] += 1
        type(self).counts[f"rule {name}"] += 1

    def checked(self, *, first: bool = False) -> None:
        """Count one invariant check; the machine's `first` invariant counts the steps too (the
        invariants run after every rule)."""
        type(self).counts["invariant checks"] += 1
        if first:
            type(self).counts["steps"] += 1


def run_counted(machine: type[Counted], budget: settings, title: str) -> None:
    """Run `machine` under `budget` and print what it ran (shown with `pytest -s`)."""
    machine.counts = Counter()
    try:
        run_state_machine_as_test(machine, settings=budget)
    finally:
        counts = machine.counts
        rules = ", ".join(
            f"{name[5:]}={n}" for name, n in sorted(counts.items()) if name.startswith("rule ")
        )
        print(
            f"\n[{title}] sequences={counts['sequences']} steps={counts['steps']}"
            f" invariant_checks={counts['invariant checks']} events={counts['events']}"
            f" ({rules})"
        )


@cache
def dead_pid() -> int:
    """The pid of a process of this machine that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def gone_session_id() -> str:
    """A session id as `new_session_id` makes, of a process that no longer runs."""
    return f"{socket.gethostname()}:{dead_pid()}:{uuid.uuid4().hex}"
