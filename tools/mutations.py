"""Mutation proof: break the promise on purpose, and show that a test notices each time.

Where it sits: a leaf tool (nothing imports it). For each mutation it patches one spot
of the daemon's source in place, runs the tests that guard that spot, restores the file
(always, also on Ctrl-C) and reports whether the tests failed, as they must:

* ``drop-1-in-50``: the ledger silently skips the sinks for every 50th part;
* ``timeout-50ms-late``: the publisher turns an open part into NG timeout 50 ms after
  its deadline instead of at it;
* ``verdict-to-neighbour``: the worker attaches each verdict to the part after it;
* ``threshold-ignored``: the rules ignore the per-class minimum confidence.

    python tools/mutations.py            # all mutations
    python tools/mutations.py drop-1-in-50

Exit 0 when every mutation was caught, 1 otherwise. Run it after changing the
pipeline, ledger, PLC link or rules, and quote its output.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "drop-1-in-50",
        "inspector/ledger.py",
        "        for sink in self._sinks:\n",
        "        if self.published % 50 == 49:  # MUTATION\n"
        "            self.published += 1\n"
        "            return\n"
        "        for sink in self._sinks:\n",
        (
            "tests/unit/test_ledger.py",
            "tests/integration/test_pipeline.py",
            "tests/integration/test_process_boundary.py::"
            "test_sigterm_under_load_exits_0_within_2s_with_every_verdict_at_the_plc",
        ),
    ),
    Mutation(
        "timeout-50ms-late",
        "inspector/ledger.py",
        "                if head.verdict is None:\n"
        "                    if head.trigger.deadline_ns > now:\n"
        "                        self._wait(now, head.trigger.deadline_ns)\n",
        "                if head.verdict is None:  # MUTATION\n"
        "                    if head.trigger.deadline_ns + 50_000_000 > now:\n"
        "                        self._wait(now, head.trigger.deadline_ns + 50_000_000)\n",
        ("tests/unit/test_ledger.py", "tests/integration/test_pipeline.py"),
    ),
    Mutation(
        "verdict-to-neighbour",
        "inspector/pipeline.py",
        "        self.ledger.close(entry, verdict, stage_ns, frame)\n",
        "        verdict, self._mut_prev = getattr(self, '_mut_prev', verdict), verdict  # MUT\n"
        "        self.ledger.close(entry, verdict, stage_ns, frame)\n",
        (
            "tests/integration/test_pipeline.py",
            "tests/integration/test_ground_truth.py",
        ),
    ),
    Mutation(
        "threshold-ignored",
        "inspector/decide.py",
        "        finding.confidence >= per_class(rules.min_confidence, finding.class_name)\n",
        "        True  # MUTATION\n",
        ("tests/unit/test_decide.py", "tests/integration/test_ground_truth.py"),
    ),
)


BACKUP = REPO / ".cache" / "mutations"


def restore_leftovers() -> None:
    """Put back any file a killed earlier run left mutated (its backup is kept until then)."""
    for backup in BACKUP.glob("*.orig"):
        target = REPO / backup.stem.replace("__", "/")
        target.write_text(backup.read_text())
        backup.unlink()
        print(f"restored {target.relative_to(REPO)} from an interrupted run")


def run_one(m: Mutation) -> tuple[bool, float, str]:
    """Apply ``m``, run its tests, restore; (caught, seconds, first failing test line)."""
    path = REPO / m.file
    source = path.read_text()
    if source.count(m.original) != 1:
        return False, 0.0, f"mutation site not found exactly once in {m.file}"
    BACKUP.mkdir(parents=True, exist_ok=True)
    backup = BACKUP / (m.file.replace("/", "__") + ".orig")
    backup.write_text(source)
    path.write_text(source.replace(m.original, m.mutated))
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out, caught = done.stdout, done.returncode != 0
    except subprocess.TimeoutExpired as exc:  # a hang after a failure still counts as caught
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        caught = "FAILED" in out or "Error" in out
    finally:
        path.write_text(source)
        backup.unlink(missing_ok=True)
    failed = [ln for ln in out.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    return caught, time.monotonic() - t0, (failed[0] if failed else "")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # unwind: the finally restores
    restore_leftovers()
    chosen = [m for m in MUTATIONS if not argv or m.name in argv]
    missed = 0
    print(f"{'mutation':<22} {'result':<8} {'s':>6}  first failing test")
    for m in chosen:
        caught, seconds, where = run_one(m)
        missed += not caught
        print(f"{m.name:<22} {'caught' if caught else 'MISSED':<8} {seconds:6.1f}  {where}")
    print(f"{len(chosen) - missed}/{len(chosen)} mutations caught")
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
