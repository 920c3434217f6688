"""The MQTT session thread: sends the spool, in order, to the broker, and nothing else.

Where it sits: the publish step, behind the MQTT sink (``plant/mqtt.py``), which fills
the spool. This thread owns the paho-mqtt client and all its socket I/O (paho's
"external loop": ``select`` on its socket and on a wake-up socket, then ``loop_read``
/ ``loop_write`` / ``loop_misc``), so no paho call ever runs in another thread.

One connection = one fresh paho client and a clean session. The spool is the only
memory of what is unacknowledged: at every (re)connect, sending restarts at the oldest
spooled message, in order; a row is deleted only after its PUBACK (QoS 1). So after a
broker outage or a daemon restart everything is replayed: at least once, in order (a
consumer de-duplicates on ``msg_id``). A negative PUBACK (MQTT 5, e.g. not authorized)
ends the connection: the message stays spooled and is sent again after the backoff.

The broker is an untrusted peer: anything paho raises while parsing what it sent, and
any socket error, ends this connection only (counted by kind, logged rate-limited),
never the thread; the next attempt waits for ``inspector.backoff.Backoff``. The backoff
starts short again only after a session that held for ``backoff_max_s``: a broker that
accepts and then drops the station at once (an ACL refusing the topic, a full broker)
is retried at the cap, not hammered at the first delay while the parts need the CPU.

The station's retained state goes to ``…/state`` at connect and on every change; the
last will publishes ``online: false`` if the station vanishes without a clean stop.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from inspector import metrics
from inspector.backoff import Backoff
from inspector.config import MqttConfig
from inspector.logging import RateLimitedLog, get_logger
from inspector.plant.message import Station, state_message
from inspector.plant.spool import Spool

log = get_logger(__name__)
_errors = RateLimitedLog(log)

#: Acknowledged rows are deleted once this many wait, or the oldest waited this long.
ACK_BATCH = 64
ACK_DELAY_S = 0.25


class SessionEnded(Exception):
    """This connection is over (lost, refused, timed out, protocol error); reconnect."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class MqttSession:
    """Connects, sends the spool in order, deletes what the broker acknowledged."""

    def __init__(self, cfg: MqttConfig, station: Station, spool: Spool) -> None:
        self.cfg = cfg
        self.station = station
        self.spool = spool
        self.parts_topic = station.topic(cfg.topic_prefix, "parts")
        self.state_topic = station.topic(cfg.topic_prefix, "state")
        self.client_id = cfg.client_id or f"inspector-{station.line}-{station.station}"[:64]
        self.stop = threading.Event()
        self.connected = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._state = (0, 0)
        self._state_sent: tuple[int, int] | None = None
        self._drain_until: float | None = None  # set by drain(): send what is left, then end
        self._draining = threading.Event()  # ends a backoff wait at once (drain() sets it)
        self._backoff = Backoff(cfg.backoff_s, cfg.backoff_max_s)
        # Per connection (reset in _connect):
        self._inflight: dict[int, int] = {}  # paho mid → spool row id
        self._state_mids: set[int] = set()
        self._acked: list[int] = []
        self._acked_at = 0.0
        self._last_sent = 0
        self._failure: SessionEnded | None = None

    # ------------------------------------------------------- other threads' API
    def wake(self) -> None:
        """New rows in the spool, or a new state: look now (any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):  # already woken, or closed at stop
            self._wake_w.send(b"\0")

    def set_state(self, state: int, error_code: int) -> None:
        self._state = (state, error_code)
        self.wake()

    def drain(self, until: float) -> None:
        """Send what the spool holds until monotonic ``until``, then say offline and end."""
        self._drain_until = until
        self._draining.set()
        self.wake()

    def close_sockets(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------- the thread
    def run(self) -> None:
        """The session loop (supervised thread ``mqtt``); returns once ``stop`` is set."""
        while not self.stop.is_set():
            if self._drain_until is not None:
                break  # not connected while stopping: the spool keeps everything
            client = self._new_client()
            connected_at: float | None = None
            try:
                self._connect(client)
                connected_at = time.monotonic()
                self._serve(client)
            except SessionEnded as exc:
                self._count_failure(exc.kind, str(exc))
            except Exception as exc:  # the broker is untrusted: its garbage ends one session
                self._count_failure("protocol", repr(exc))
            finally:
                self._teardown(client)
            if self._drain_until is not None:
                break
            if connected_at is not None and time.monotonic() - connected_at >= self._backoff.cap_s:
                self._backoff.reset()  # the session held: a new failure starts short again
            self._draining.wait(self._backoff.next())  # up to backoff_max_s; a stop cuts it
        self.stop.set()

    def _count_failure(self, kind: str, detail: str) -> None:
        metrics.MQTT_ERRORS.labels(kind).inc()
        _errors.error("mqtt_session_ended", kind=kind, error=detail, broker=self.cfg.host)

    def _new_client(self) -> paho.Client:
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(cfg.max_inflight + 2)  # + state messages
        client.max_queued_messages_set(0)
        client.connect_timeout = cfg.connect_timeout_s
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls.enabled:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(not cfg.tls.check_hostname)
        will = state_message(
            self.station, 4, self._state[1], online=False, reason="connection lost"
        )
        client.will_set(self.state_topic, will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect(self, client: paho.Client) -> None:
        self._inflight, self._state_mids, self._acked = {}, set(), []
        self._last_sent, self._failure, self._state_sent = 0, None, None
        metrics.MQTT_CONNECT_ATTEMPTS.inc()
        try:
            if self.cfg.protocol == "5":
                client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=True)
            else:
                client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            raise SessionEnded("connect", repr(exc)) from exc
        deadline = time.monotonic() + self.cfg.connect_timeout_s
        while not self.connected.is_set():
            if self._failure is not None:
                raise self._failure
            if self.stop.is_set() or self._drain_until is not None:
                raise SessionEnded("timeout", "stopping before CONNACK")
            if time.monotonic() > deadline:
                raise SessionEnded("timeout", f"no CONNACK within {self.cfg.connect_timeout_s}s")
            self._io(client, timeout=min(0.1, max(0.0, deadline - time.monotonic())))
        metrics.MQTT_CONNECTED.set(1)
        log.info(
            "mqtt_connected", broker=f"{self.cfg.host}:{self.cfg.port}", spooled=self.spool.count
        )

    def _serve(self, client: paho.Client) -> None:
        while not self.stop.is_set():
            self._forget_acked(now=self._drain_until is not None)
            self._send_state(client)
            self._fill_window(client)
            if self._drain_until is not None and (
                (self.spool.count == 0 and not self._inflight and not self._state_mids)
                or time.monotonic() >= self._drain_until
            ):
                self._say_goodbye(client)
                return
            timeout = ACK_DELAY_S if self._drain_until is None else 0.02
            self._io(client, timeout)
            if self._failure is not None:
                raise self._failure

    def _io(self, client: paho.Client, timeout: float) -> None:
        """One round of the external loop: wait for the socket or a wake-up, then I/O."""
        sock = client.socket()
        if sock is None:
            raise SessionEnded("lost", "socket closed")
        wlist = [sock] if client.want_write() else []
        readable, writable, _ = select.select([sock, self._wake_r], wlist, [], timeout)
        if self._wake_r in readable:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
        if sock in readable:
            self._check(client.loop_read(), "read")
        if writable or client.want_write():
            self._check(client.loop_write(), "write")
        self._check(client.loop_misc(), "keepalive")

    def _check(self, rc: MQTTErrorCode, what: str) -> None:
        if self._failure is not None:
            raise self._failure
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise SessionEnded("lost", f"{what}: {paho.error_string(rc)}")

    def _fill_window(self, client: paho.Client) -> None:
        room = self.cfg.max_inflight - len(self._inflight)
        if room <= 0 or not self.connected.is_set():
            return
        for row in self.spool.after(self._last_sent, room):
            info = client.publish(row.topic, row.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SessionEnded("lost", f"publish: {paho.error_string(info.rc)}")
            self._inflight[info.mid] = row.id
            self._last_sent = row.id

    def _forget_acked(self, *, now: bool = True) -> None:
        """Delete acknowledged rows, in batches: a delete that a crash loses only means a
        duplicate after the restart, which consumers drop by ``msg_id``."""
        due = len(self._acked) >= ACK_BATCH or time.monotonic() >= self._acked_at + ACK_DELAY_S
        if self._acked and (now or due):
            acked, self._acked = self._acked, []
            self.spool.delete(acked)
            metrics.MQTT_ACKED.inc(len(acked))
            metrics.MQTT_SPOOL_MESSAGES.set(self.spool.count)
            metrics.MQTT_SPOOL_BYTES.set(self.spool.bytes)

    def _send_state(self, client: paho.Client, *, online: bool = True) -> None:
        state = self._state
        if state == self._state_sent and online:
            return
        payload = state_message(self.station, state[0], state[1], online=online)
        info = client.publish(self.state_topic, payload, qos=1, retain=True)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._state_mids.add(info.mid)
            self._state_sent = state

    def _say_goodbye(self, client: paho.Client) -> None:
        """Clean stop: retained offline state (acknowledged, within the drain), DISCONNECT."""
        self._state = (4, self._state[1])
        self._send_state(client, online=False)
        while self._state_mids and time.monotonic() < (self._drain_until or 0.0) + 0.1:
            self._io(client, 0.02)
        client.disconnect()
        if client.want_write():
            client.loop_write()

    def _teardown(self, client: paho.Client) -> None:
        self._forget_acked()
        self.connected.clear()
        metrics.MQTT_CONNECTED.set(0)
        try:
            sock = client.socket()
            if sock is not None:
                sock.close()
        except Exception as exc:  # closing a broken socket must not end the thread
            log.debug("mqtt_socket_close_failed", error=repr(exc))

    # ---------------------------------------------------------------- callbacks
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self._failure = SessionEnded("refused", f"CONNACK {rc}")
        else:
            self.connected.set()

    def _on_disconnect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connected.clear()
        if self._failure is None:
            self._failure = SessionEnded("lost", f"disconnected: {rc}")

    def _on_publish(self, client: paho.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if mid in self._state_mids:
            self._state_mids.discard(mid)
            return
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return  # an acknowledgement for nothing we sent: ignore it
        if rc.is_failure:
            self._failure = SessionEnded("puback", f"broker refused message: {rc}")
            return
        if not self._acked:
            self._acked_at = time.monotonic()
        self._acked.append(row_id)
