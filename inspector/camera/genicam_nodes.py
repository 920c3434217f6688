"""Device discovery and GenICam node-map helpers for the harvesters source (step 2).

Functions over harvesters' device-info and node-map objects: which producer files to
load (``open_harvester`` loads them), which device to open, and how to apply a feature
set so that a misspelled or unwritable feature fails at start with the close matches
among the device's nodes.
``camera/genicam.py`` uses them at every (re)open; ``camera/cli.py`` uses them for
``inspector camera list|features``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inspector.config import GenicamCameraConfig
from inspector.errors import CameraError, ConfigError


def resolve_cti(cti: list[Path]) -> list[Path]:
    """The producer files to load: ``cti`` if given, else every .cti in the directories
    of ``GENICAM_GENTL64_PATH``. CameraError when there is none."""
    if cti:
        missing = [str(p) for p in cti if not p.is_file()]
        if missing:
            raise CameraError(f"GenTL producer file(s) not found: {missing}")
        return list(cti)
    found: list[Path] = []
    for folder in os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if folder and Path(folder).is_dir():
            found += sorted(Path(folder).glob("*.cti"))
    if not found:
        raise CameraError("no GenTL producer: set camera.genicam.cti or GENICAM_GENTL64_PATH")
    return found


def open_harvester(cti: list[Path]) -> Any:
    """A harvesters ``Harvester`` with the producer file(s) loaded (``resolve_cti``) and
    its device list updated; the caller ``reset()``s it. Reset here if that fails."""
    from harvesters.core import Harvester

    harvester = Harvester()
    try:
        for path in resolve_cti(cti):
            harvester.add_file(str(path), check_existence=True)
        harvester.update()
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original error, not reset's
            harvester.reset()
        raise
    return harvester


DEVICE_FIELDS = ("vendor", "model", "serial_number", "user_defined_name", "id_", "tl_type")


def list_devices(cti: list[Path]) -> list[dict[str, str | None]]:
    """The devices behind the producer(s), one mapping of DEVICE_FIELDS each; the
    producer is unloaded again before this returns."""
    harvester = open_harvester(cti)
    try:
        return [{k: device_field(i, k) for k in DEVICE_FIELDS} for i in harvester.device_info_list]
    finally:
        harvester.reset()


def device_field(info: Any, key: str) -> str | None:
    """One DeviceInfo property, or None where the producer does not provide it."""
    try:
        value = getattr(info, key)
    except Exception:  # GenTL NotAvailable: e.g. Viky has no user-defined name
        return None
    return None if value is None else str(value)


def describe_device(info: Any) -> str:
    """``vendor model (serial ...)``: how logs and errors name a device."""
    return (
        f"{device_field(info, 'vendor')} {device_field(info, 'model')} "
        f"(serial {device_field(info, 'serial_number')}, id {device_field(info, 'id_')})"
    )


def choose_device(infos: list[Any], cfg: GenicamCameraConfig) -> Any:
    """The DeviceInfo the config names: serial number, user name, model, index, or the
    only/first device. CameraError listing what is there when it is not."""
    if not infos:
        raise CameraError("no camera found behind the GenTL producer(s)")
    listing = "; ".join(describe_device(i) for i in infos)
    if cfg.index is not None:
        if cfg.index >= len(infos):
            raise CameraError(f"no camera at index {cfg.index}; found: {listing}")
        return infos[cfg.index]
    for key, want in (
        ("serial_number", cfg.serial_number),
        ("user_defined_name", cfg.user_defined_name),
        ("model", cfg.model),
    ):
        if want is None:
            continue
        hits = [i for i in infos if device_field(i, key) == want]
        if not hits:
            raise CameraError(f"no camera with {key} {want!r}; found: {listing}")
        if len(hits) > 1 and key != "model":
            raise CameraError(f"{len(hits)} cameras with {key} {want!r}; found: {listing}")
        return hits[0]
    return infos[0]


def feature_names(node_map: Any) -> list[str]:
    """Names of the device's features (implementation nodes left out)."""
    names = (n.node.name for n in node_map.nodes)
    return sorted(n for n in names if not n.startswith(("EnumEntry_", "_")))


def trigger_features(node_map: Any, mode: str) -> list[dict[str, Any]]:
    """SFNC features that put the device in ``mode``, applied before the user's own."""
    has = set(feature_names(node_map))
    if mode == "free_run":
        return [{"TriggerMode": "Off"}] if "TriggerMode" in has else []
    needs = {"TriggerMode"} | ({"TriggerSoftware"} if mode == "software" else set())
    if not needs <= has:
        raise ConfigError(
            f"trigger_mode {mode!r} needs the {sorted(needs)} feature(s), which this device "
            "does not have; use trigger_mode 'free_run' or another camera"
        )
    out: list[dict[str, Any]] = []
    if "TriggerSelector" in has:
        out.append({"TriggerSelector": "FrameStart"})
    out.append({"TriggerMode": "On"})
    if mode == "software":
        out.append({"TriggerSource": "Software"})
    return out


def apply_features(node_map: Any, features: list[dict[str, Any]]) -> None:
    """Write each ``{Name: value}`` in order; ConfigError naming the first that fails,
    with close matches for a name the device does not have."""
    for entry in features:
        for name, value in entry.items():
            try:
                node = node_map.get_node(name)
            except Exception:
                near = close_matches(name, feature_names(node_map))
                hint = f"; close matches: {', '.join(near)}" if near else ""
                raise ConfigError(f"camera feature {name!r} does not exist{hint}") from None
            _write_feature(node, name, value)


def _write_feature(node: Any, name: str, value: Any) -> None:
    from genicam import genapi

    mode = genapi.EAccessMode(node.node.get_access_mode())
    if mode not in (genapi.EAccessMode.RW, genapi.EAccessMode.WO):
        raise ConfigError(f"camera feature {name!r} is not writable now (access {mode.name})")
    try:
        if isinstance(node, genapi.ICommand):
            if value not in (True, "execute"):
                raise ConfigError(f"command feature {name!r} takes true or 'execute'")
            node.execute()
        elif isinstance(node, genapi.IEnumeration):
            entries = [e.symbolic for e in node.entries]
            if str(value) not in entries:
                raise ConfigError(
                    f"camera feature {name!r} has no value {value!r}; one of {entries}"
                )
            node.value = str(value)
        elif isinstance(node, genapi.IBoolean):
            if not isinstance(value, bool):
                raise ConfigError(f"camera feature {name!r} takes true/false, not {value!r}")
            node.value = value
        elif isinstance(node, genapi.IInteger):
            if isinstance(value, bool) or int(value) != value:
                raise ConfigError(f"camera feature {name!r} takes an integer, not {value!r}")
            node.value = int(value)
        elif isinstance(node, genapi.IFloat):
            node.value = float(value)
        elif isinstance(node, genapi.IString):
            node.value = str(value)
        else:
            raise ConfigError(f"camera feature {name!r} ({type(node).__name__}) cannot be set")
    except ConfigError:
        raise
    except Exception as exc:  # out of range, locked while acquiring, bad type ...
        raise ConfigError(f"camera feature {name}={value!r} rejected: {exc}") from exc


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Feature names close to a misspelled ``name``: case-insensitive hits first, then
    difflib's nearest spellings."""
    names = sorted(set(candidates))
    lower = name.lower()
    hits = [c for c in names if c.lower() == lower]
    hits += [c for c in names if c not in hits and (lower in c.lower() or c.lower() in lower)]
    by_lower = {c.lower(): c for c in names}
    for near in difflib.get_close_matches(lower, list(by_lower), n=n, cutoff=0.6):
        if by_lower[near] not in hits:
            hits.append(by_lower[near])
    return hits[:n]
