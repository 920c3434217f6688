"""Camera sources: where frames come from (step 2 of the flow).

``open_camera(cfg)`` returns a ``Camera`` for ``camera.type``, looked up in ``CAMERAS``:
``sim`` (the synthetic line of ``inspector/sim/``), ``folder`` (replay) or ``genicam``
(harvesters). Each module is imported only when its type is configured.
"""

from __future__ import annotations

from inspector.camera.base import Camera
from inspector.config import CameraConfig
from inspector.errors import ConfigError
from inspector.registry import Registry

CAMERAS = Registry(
    "camera type",
    {
        "sim": "inspector.sim.camera:SimCamera",
        "folder": "inspector.camera.folder:FolderCamera",
        "genicam": "inspector.camera.genicam:GenicamCamera",
    },
)


def open_camera(cfg: CameraConfig) -> Camera:
    """Build (not yet open) the camera source named by ``cfg.type``."""
    if cfg.type == "folder" and cfg.folder is None:
        raise ConfigError("camera.type is 'folder' but camera.folder is missing")
    settings = {"sim": cfg.sim, "folder": cfg.folder, "genicam": cfg.genicam}[cfg.type]
    camera: Camera = CAMERAS.load(cfg.type)(settings)
    return camera
