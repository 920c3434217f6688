"""Structured logs with structlog: JSON lines under a service, readable in a terminal.

``configure(cfg)`` is called once by the CLI. Wall-clock timestamps appear only here,
in logs; durations in log lines come from monotonic clocks.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from inspector.config import LoggingConfig

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(cfg: LoggingConfig | None = None, *, stream: Any = None) -> None:
    """Set up structlog: console renderer on a TTY (or format=console), JSON otherwise."""
    cfg = cfg or LoggingConfig()
    out = stream or sys.stdout
    use_console = cfg.format == "console" or (cfg.format == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    # pymodbus logs every failed request and frame dumps through stdlib logging; the
    # PLC link reports those errors itself, rate-limited, so keep pymodbus quiet.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[cfg.level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger for a module."""
    return structlog.get_logger(name)
