"""Helpers for the PLC link tests: a stand-in pipeline, a running link, the accounting.

The subject of these tests is the link, so the "pipeline" here answers each trigger
with a verdict derived from its part id (every 7th part NG), in trigger order, with an
optional work time (sleeping, or holding the GIL like Python-side inspection work), and
NG ``overrun`` for a trigger beyond its depth, as the real pipeline does. The
full-daemon end-to-end test lives with the pipeline.

``check_accounting`` is the exact bookkeeping every PLC test ends with: each part the
PLC triggered is a verdict it accepted or a named loss the link counted; nothing is
waved through by a share.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inspector.config import PlcConfig
from inspector.plc.link import LinkStats, PlcLink
from inspector.plc.protocol import State
from inspector.types import PartResult, PlcVerdict, Reason, Trigger, Verdict, ng


def expected_ok(part_id: int) -> bool:
    return part_id % 7 != 0


@dataclass
class FakePipeline:
    """Answers triggers in order from one worker thread; ``depth`` parts at most in flight."""

    depth: int = 4
    work_s: float = 0.0
    busy: bool = False  # work by spinning in Python (holds the GIL), not by sleeping
    triggers: list[Trigger] = field(default_factory=list)
    results: list[PartResult] = field(default_factory=list)
    progress: int = 0

    def __post_init__(self) -> None:
        self._q: queue.Queue[tuple[Trigger, bool] | None] = queue.Queue()
        self._open = 0
        self._lock = threading.Lock()
        self.sink: Callable[[PartResult], None] | None = None
        self._thread = threading.Thread(target=self._work, name="fake-pipeline")

    def submit(self, trigger: Trigger) -> None:
        with self._lock:
            overrun = self._open >= self.depth
            self._open += 1
            self.triggers.append(trigger)
        self._q.put((trigger, overrun))

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            trigger, overrun = item
            if overrun:
                verdict = ng(Reason.OVERRUN, "pipeline full")
            else:
                if self.work_s and self.busy:
                    spin(self.work_s)  # Python-side work: competes with the link for the GIL
                elif self.work_s:
                    time.sleep(self.work_s)  # stands in for inference time
                ok = expected_ok(trigger.part_id)
                verdict = (
                    Verdict(ok=True, reason=Reason.OK)
                    if ok
                    else Verdict(ok=False, reason=Reason.DEFECT, defect_code=3)
                )
            now = time.monotonic_ns()
            if now > trigger.deadline_ns and verdict.ok:
                verdict = ng(Reason.TIMEOUT)
            result = PartResult(trigger=trigger, verdict=verdict, t_verdict_ns=now)
            with self._lock:
                self._open -= 1
                self.progress += 1
                self.results.append(result)
            assert self.sink is not None
            self.sink(result)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(5.0)


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class RunningLink:
    """A PlcLink running in its trigger thread, fed to a FakePipeline; stop() joins all."""

    def __init__(
        self,
        cfg: PlcConfig,
        pipeline: FakePipeline | None = None,
        *,
        budget_ms: float = 200.0,
        on_recipe: Callable[[int], bool] | None = None,
    ) -> None:
        self.pipeline = pipeline or FakePipeline()
        self.link = PlcLink(
            cfg,
            cycle_budget_ms=budget_ms,
            config_crc=0xBEEF,
            on_recipe=on_recipe,
            progress=lambda: self.pipeline.progress,
            rng=random.Random(11),
        )
        self.pipeline.sink = self.link.publish
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self.link.run, args=(self.pipeline.submit, self.stop_event), name="plc-link"
        )

    def start(self) -> RunningLink:
        self.pipeline.start()
        self.link.set_state(State.READY)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5.0)
        self.pipeline.stop()
        assert not self.thread.is_alive()

    def stats(self) -> LinkStats:
        """A copy of the link's counts (taken in the test thread; ints only)."""
        return dataclasses.replace(
            self.link.stats, dropped=dict(self.link.stats.dropped), up_at_ns=[]
        )


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll a condition that has no event to await (state read over Modbus)."""
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.005)


def client_cfg(port: int, **kw: object) -> PlcConfig:
    base: dict[str, object] = dict(
        enabled=True, role="client", port=port, poll_ms=1.0, backoff_s=0.02, backoff_max_s=0.2
    )
    base.update(kw)
    return PlcConfig(**base)


def check_accounting(plc: Mapping[str, Any], stats: LinkStats) -> None:
    """Every part the PLC triggered is a verdict it took or a named loss the link counted.

    ``plc`` is the simulator's counts (every part triggered and answered or expired),
    ``stats`` the link's, over the same parts. Losses on the link side: ``missed``
    (not in the trigger ring any more), ``late`` (seen after its deadline), ``unseen``
    (raised while the link was down), ``not_taken`` (after stop_triggers) and
    ``dropped`` results by reason. The PLC's ``late`` are
    verdicts written after its deadline (it rejects them); ``forgotten`` are parts in
    its FIFO when its program restarted.
    """
    dropped = sum(stats.dropped.values())
    unseen = stats.missed + stats.late + stats.unseen + stats.not_taken
    summary = f"plc={dict(plc)} link={stats}"
    assert plc["mismatched"] == 0, summary
    assert plc["triggered"] == (
        plc["ok"] + plc["ng"] + plc["late"] + plc["missed"] + plc.get("forgotten", 0)
    ), summary
    assert plc["triggered"] == stats.submitted + unseen, summary
    assert stats.results == stats.submitted, summary  # the pipeline answered every part
    assert plc["ok"] + plc["ng"] + plc["late"] == stats.results - dropped, summary
    assert plc["missed"] + plc.get("forgotten", 0) == unseen + dropped, summary


def check_verdicts(answers: list[tuple[int, int]], inspected: set[int]) -> None:
    """No OK for a part the pipeline never inspected, and every verdict the right one."""
    uninspected_ok = [pid for pid, v in answers if v == PlcVerdict.OK and pid not in inspected]
    assert uninspected_ok == []
    escapes = [pid for pid, v in answers if v == PlcVerdict.OK and not expected_ok(pid)]
    assert escapes == []
    wrong = [pid for pid, v in answers if expected_ok(pid) and v not in (1, 3, 5)]
    assert wrong == []  # expected-OK: OK, or NG_TIMEOUT if late, or NG_ERROR on overrun


class SimProcess:
    """``python -m inspector.sim.cli --control`` in its own process: a PLC on another
    "device", driven by JSON commands (fault injection) and killed for real."""

    def __init__(self, *args: str, port: int = 0) -> None:
        cmd = [sys.executable, "-m", "inspector.sim.cli", "--control", "--json"]
        cmd += ["--port", str(port), *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.t_listen_ns = time.monotonic_ns()
        if "port=" not in line:
            self.kill()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.port = int(line.split("port=")[1].split()[0])

    def command(self, cmd: str, **kw: object) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, answer
        return answer if cmd == "counts" else answer.get("value")

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = self.command("counts")
        return out

    def wait_counts(
        self, cond: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0, what: str = ""
    ) -> dict[str, Any]:
        """Ask for the counts until ``cond`` holds (the PLC is another process)."""
        end = time.monotonic() + timeout_s
        while True:
            counts = self.counts()
            if cond(counts):
                return counts
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}: {counts}")
            time.sleep(0.02)

    def quit(self) -> dict[str, Any]:
        """End the simulator; its final summary (with every on-time answer)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            out, _ = self.proc.communicate(timeout=20)
        finally:
            self.kill()
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary

    def kill(self) -> None:
        """SIGKILL: a PLC switched off, nothing said on the wire."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def link_cfg(port: int, **kw: object) -> PlcConfig:
    """The production defaults for reconnects and timeouts (backoff 0.05 s → 0.5 s)."""
    return PlcConfig(enabled=True, role="client", port=port, poll_ms=1.0, **kw)  # type: ignore[arg-type]


def settled(parts: int) -> Callable[[dict[str, Any]], bool]:
    """The PLC triggered ``parts`` and judged (or expired) every one."""

    def done(c: dict[str, Any]) -> bool:
        judged = c["ok"] + c["ng"] + c["late"] + c["missed"] + c["forgotten"]
        return bool(c["triggered"] >= parts and judged == c["triggered"])

    return done


def sim_status(sim: SimProcess) -> list[int]:
    status: list[int] = sim.command("status")
    return status
