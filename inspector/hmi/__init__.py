"""The station web page: a sink of the last step of the flow (issue 16).

    ledger ─▶ … ─▶ Hmi.sink ┄▶ encoder thread ─▶ hub ─▶ aiohttp server ─▶ browsers

What the line sees: the last part with its overlays, verdict, reason and times;
counters since start and over the last hour; the cycle-time strip chart against the
budget; the recipe and the state of PLC link, camera and GPU; the NG gallery read from
the archive. Modules:

* ``live``     the sink (latest-only slot, counters) and the stats message; no web code;
* ``overlay``  what is drawn over an image (one shape list) and the JPEG encoding;
* ``gallery``  the archive directory read back, and the only way to its files;
* ``stream``   the encoder thread and the hub that serves the same bytes to every client;
* ``routes``   the read-only HTTP routes (aiohttp), auth, hardening;
* ``server``   ``Hmi``: socket, supervised threads, crash-restart.

``aiohttp`` comes with the ``hmi`` extra and is imported only from ``routes`` and
``server``: import ``inspector.hmi.server`` only when ``hmi.enabled``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.config import Config
from inspector.errors import ConfigError
from inspector.extras import install_hint

if TYPE_CHECKING:
    from inspector.hmi.server import Hmi


def open_hmi(cfg: Config, *, model_hash: str = "", config_hash: str = "") -> Hmi:
    """Build the page (not started); ConfigError (exit 78) without the ``hmi`` extra."""
    try:
        from inspector.hmi.server import Hmi
    except ImportError as exc:
        raise ConfigError(
            f"hmi.enabled needs the 'hmi' extra: {install_hint('hmi')} ({exc})"
        ) from exc
    return Hmi(cfg, model_hash=model_hash, config_hash=config_hash)
