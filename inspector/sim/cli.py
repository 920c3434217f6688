"""``inspector plc-sim``: run the PLC simulator (``sim/plc.py``) from the command line.

The lead's ``cli.py`` calls ``register_cli(subparsers)``; the module also runs on its
own (``python -m inspector.sim.cli --port 5020 --rate 10 --parts 2000``), which is how
tests start the simulator in a separate process. It prints one ``listening`` line with
the port once ready and one summary line at the end, and exits 1 on any mismatch.

``--control`` (tests, fault injection): the simulator also reads one JSON command per
line on stdin and answers each with one JSON line on stdout; it then runs until the
``quit`` command (or end of input), not until ``--parts`` are done. Commands:
``counts``, ``pause_acks``, ``resume_acks``, ``double`` (two parts in one scan),
``jump`` with ``n`` (TRIGGER_SEQ skips n-1 parts the ring never shows), ``restart``
(the PLC program restarts with zeroed registers), ``triggering`` with ``on``,
``first_result_after`` with ``t_ns`` (the first on-time verdict at or after that
``time.monotonic_ns()``, which is one clock for every process of the host), ``status``
(VISION_HEARTBEAT, STATE, ERROR_CODE as last written by the vision), ``quit``.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from inspector.plc.protocol import DEFAULT_RING, MAX_RING
from inspector.sim.plc import PlcSimulator
from inspector.sim.plc_program import PlcModel

EXIT_MISMATCH = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The plc-sim options (also used by ``register_cli``)."""
    p.add_argument("--host", default="127.0.0.1", help="Address to serve on or poll.")
    p.add_argument("--port", type=int, default=5020, help="Port (0: pick a free one).")
    p.add_argument(
        "--role",
        choices=("client", "server"),
        default="client",
        help="The DAEMON's role: 'client' (the simulator serves) or 'server' (it polls).",
    )
    p.add_argument("--unit-id", type=int, default=1, help="Modbus unit id.")
    p.add_argument("--in-base", type=int, default=0, help="Base address of block A.")
    p.add_argument("--out-base", type=int, default=100, help="Base address of block B.")
    p.add_argument("--rate", type=float, default=10.0, help="Parts per second.")
    p.add_argument("--parts", type=int, default=None, help="Stop after this many parts.")
    p.add_argument("--deadline-ms", type=float, default=100.0, help="Trigger-to-verdict deadline.")
    p.add_argument("--first-part-id", type=int, default=1, help="PART_ID of the first part.")
    p.add_argument("--recipe", type=int, default=1, help="RECIPE_ID to select.")
    p.add_argument(
        "--ring",
        type=int,
        choices=range(1, MAX_RING + 1),
        default=DEFAULT_RING,
        metavar=f"1..{MAX_RING}",
        help="Slots of the trigger ring (the daemon's plc.trigger_ring).",
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="Also take JSON commands on stdin (fault injection); run until 'quit'.",
    )
    p.add_argument(
        "--no-wait-ready",
        action="store_true",
        help="Trigger parts even while the vision's STATE is not ready/busy.",
    )
    p.add_argument(
        "--json", action="store_true", help="Print the summary and every verdict as JSON."
    )


def register_cli(subparsers: Any) -> None:
    """Add ``plc-sim`` to the daemon's argparse subcommands."""
    p = subparsers.add_parser(
        "plc-sim",
        help="Run a PLC simulator on 127.0.0.1 (Modbus TCP) and check every verdict.",
        description=__doc__,
    )
    add_arguments(p)
    p.set_defaults(func=run_plc_sim)


def run_plc_sim(args: argparse.Namespace) -> int:
    """Run until --parts are done (or SIGINT/SIGTERM); 1 on any mismatch, else 0."""
    sim = PlcSimulator(
        host=args.host,
        port=args.port,
        daemon_role=args.role,
        unit_id=args.unit_id,
        in_base=args.in_base,
        out_base=args.out_base,
        rate_hz=args.rate,
        parts=args.parts,
        deadline_ms=args.deadline_ms,
        first_part_id=args.first_part_id,
        recipe_id=args.recipe,
        wait_ready=not args.no_wait_ready,
        ring=args.ring,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    sim.start()
    print(f"plc-sim listening role={args.role} port={sim.bound_port}", flush=True)
    if args.control:
        threading.Thread(
            target=_serve_commands, args=(sim, stop), name="plc-sim-control", daemon=True
        ).start()
    while not stop.is_set() and (args.control or not sim.done.is_set()):
        stop.wait(0.1)
    counts = sim.counts()
    answers = sim.call(lambda m: list(m.answers.items()))
    sim.stop()
    if args.json:
        print(json.dumps({**counts.__dict__, "answers": answers}), flush=True)
    else:
        print(f"plc-sim {counts.summary()}", flush=True)
    return EXIT_MISMATCH if counts.mismatched else 0


def _first_after(model: PlcModel, t_ns: int) -> int | None:
    times = list(model.result_times)
    i = bisect.bisect_left(times, t_ns)
    return times[i] if i < len(times) else None


def _command(sim: PlcSimulator, cmd: dict[str, Any]) -> dict[str, Any]:
    """Run one control command in the simulator's loop; the answer to print."""
    name, now = cmd.get("cmd"), time.monotonic_ns()
    if name == "counts":
        return dataclasses.asdict(sim.counts())
    if name == "restart":
        sim.restart_program()
        return {"ok": True}
    if name == "triggering":
        sim.triggering = bool(cmd.get("on", True))
        return {"ok": True}
    actions: dict[str, Any] = {
        "pause_acks": lambda m: m.pause_acks(),
        "resume_acks": lambda m: m.resume_acks(time.monotonic_ns()),
        "double": lambda m: m.trigger(now, 2),
        "jump": lambda m: m.jump(now, int(cmd.get("n", 2))),
        "first_result_after": lambda m: _first_after(m, int(cmd.get("t_ns", 0))),
        "status": lambda m: list(m.status),
    }
    if name not in actions:
        return {"error": f"unknown command {name!r}"}
    return {"ok": True, "value": sim.call(actions[name])}


def _serve_commands(sim: PlcSimulator, stop: threading.Event) -> None:
    """Answer JSON commands from stdin until 'quit' or end of input, then stop."""
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("cmd") == "quit":
            break
        print(json.dumps(_command(sim, cmd)), flush=True)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspector plc-sim", description=__doc__)
    add_arguments(parser)
    return run_plc_sim(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
