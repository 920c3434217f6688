"""The one exception tree of inspector.

Every error the daemon raises on purpose derives from ``InspectorError``. A step of the
flow that catches one of these turns the part into NG with the matching reason code; it never
turns it into OK.
"""

from __future__ import annotations

#: Exit code of a clean stop.
EXIT_OK = 0
#: Exit code for an internal fault (EX_SOFTWARE): systemd restarts the daemon.
EXIT_INTERNAL = 70
#: Exit code for configuration or environment errors (EX_CONFIG): systemd does not
#: restart-loop (``RestartPreventExitStatus=78`` in the unit).
EXIT_CONFIG = 78


class InspectorError(Exception):
    """Base of every deliberate inspector error."""


class ConfigError(InspectorError):
    """The configuration (YAML, recipe, rule) is invalid."""


class CameraError(InspectorError):
    """Acquisition failed: no device, lost device, timeout, damaged buffer."""


class FrameError(CameraError):
    """A frame arrived but cannot be inspected (wrong shape, dtype, incomplete)."""


class BackendError(InspectorError):
    """An inference backend failed to load or to run."""


class ModelFileError(BackendError):
    """A model file does not match the SHA-256 its recipe pins (refused before loading)."""


class EngineError(BackendError):
    """A TensorRT engine is missing, stale, tampered with or incompatible."""


class ModelError(InspectorError):
    """A model's outputs do not match the layout its family expects."""


class PlcError(InspectorError):
    """The PLC link failed or the PLC sent a value that is out of protocol."""


class PlcConnectionError(PlcError):
    """The PLC cannot be reached, refused the connection, or the connection dropped."""


class PlcTimeout(PlcError):
    """A Modbus request got no answer in time."""


class PlcProtocolError(PlcError):
    """The PLC answered with something out of protocol (bad register values, exceptions)."""
