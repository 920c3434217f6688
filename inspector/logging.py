"""Structured logs with structlog: JSON lines under a service, readable in a terminal.

``configure(cfg)`` is called once by the CLI. Wall-clock timestamps appear only here,
in logs; durations in log lines come from monotonic clocks.

Nothing that logs ever waits for the log reader: lines go to a bounded in-memory queue
that one writer thread empties into stdout (or journald's pipe). A stalled reader
fills the queue; further lines are dropped and counted
(``inspector_log_lines_dropped_total``), and a summary line says how many once the
reader is back. ``flush()`` drains the queue at exit.

Under systemd, stdout is the journal's stream (``$JOURNAL_STREAM`` names its
device:inode). Each line then starts with its syslog priority, ``<3>`` for error,
``<4>`` warning, ``<6>`` info, ``<7>`` debug (sd-daemon(3)), which journald strips and
stores as PRIORITY, so ``journalctl -p err`` finds the errors. The prefix is added to
the rendered line before it is queued: writing stays non-blocking.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

import structlog

from inspector import metrics
from inspector.config import LoggingConfig

#: Lines held while the reader is slow; at ~300 bytes a line, about 3 MB.
MAX_QUEUED_LINES = 10_000


class NonBlockingStream:
    """A write-only text stream whose ``write`` never blocks; a thread does the real I/O."""

    def __init__(self, out: TextIO, maxlines: int = MAX_QUEUED_LINES) -> None:
        self.out = out
        self.maxlines = maxlines
        self._q: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._dropped = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="inspector-log", daemon=True)
        self._thread.start()

    def isatty(self) -> bool:
        return bool(self.out.isatty())

    def write(self, text: str) -> int:
        with self._cond:
            if len(self._q) >= self.maxlines:
                self._dropped += 1
                metrics.LOG_LINES_DROPPED.inc()
                return 0
            self._q.append(text)
            self._idle.clear()
            self._cond.notify()
        return len(text)

    def flush(self, timeout_s: float = 0.0) -> bool:
        """Wait up to ``timeout_s`` for the writer to empty the queue; True if it did."""
        return self._idle.wait(timeout_s) if timeout_s > 0 else self._idle.is_set()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._q:
                    self._idle.set()
                    self._cond.wait()
                batch = list(self._q)
                self._q.clear()
                dropped, self._dropped = self._dropped, 0
            if dropped:
                batch.append(f'{{"event": "log_lines_dropped", "count": {dropped}}}\n')
            try:
                self.out.write("".join(batch))
                self.out.flush()
            except (OSError, ValueError):  # reader gone or stream closed: nothing to tell
                time.sleep(0.1)


_stream: NonBlockingStream | None = None


def flush(timeout_s: float = 1.0) -> bool:
    """Drain queued log lines (at exit); True if everything was written."""
    return _stream.flush(timeout_s) if _stream is not None else True


class RateLimitedLog:
    """Log an error kind at most once per ``period_s``; say how many were suppressed."""

    def __init__(self, logger: Any, period_s: float = 5.0) -> None:
        self.logger = logger
        self.period_ns = int(period_s * 1e9)
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def error(self, event: str, *, kind: str = "", **kw: Any) -> bool:
        """Log ``event`` unless this (event, kind) was logged within the period; True if logged."""
        key = f"{event}:{kind}"
        now = time.monotonic_ns()
        with self._lock:
            if now - self._last.get(key, -self.period_ns) < self.period_ns:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        extra = {"kind": kind} if kind else {}
        self.logger.error(event, suppressed=suppressed, **extra, **kw)
        return True


#: sd-daemon(3) / syslog priorities of structlog's method names.
SYSLOG_PRIORITY = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}


def is_journal_stream(out: Any) -> bool:
    """True when ``out`` is the stream systemd connected to the journal (``$JOURNAL_STREAM``)."""
    spec = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in spec.split(":"))
        st = os.fstat(out.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def add_syslog_priority(_logger: Any, method_name: str, rendered: str) -> str:
    """Prefix a rendered line with its ``<N>`` priority (the last processor, for journald)."""
    return f"<{SYSLOG_PRIORITY.get(method_name, 6)}>{rendered}"


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(cfg: LoggingConfig | None = None, *, stream: Any = None) -> None:
    """Set up structlog: console renderer on a TTY (or format=console), JSON otherwise.

    Lines get journald priority prefixes when the stream (stdout by default) is the
    journal's (``is_journal_stream``).
    """
    global _stream
    cfg = cfg or LoggingConfig()
    if stream is None:
        if _stream is None or _stream.out is not sys.stdout:
            _stream = NonBlockingStream(sys.stdout)
        out: Any = _stream
        journal = is_journal_stream(sys.stdout)
    else:
        out = stream
        journal = is_journal_stream(stream)
    use_console = cfg.format == "console" or (cfg.format == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    # pymodbus logs every failed request and frame dumps through stdlib logging; the
    # PLC link reports those errors itself, rate-limited, so keep pymodbus quiet.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # After the renderer: the processor gets the rendered line (structlog allows it,
    # its type stubs expect an event dict).
    last: list[Any] = [add_syslog_priority] if journal else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
            *last,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[cfg.level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger for a module."""
    return structlog.get_logger(name)
