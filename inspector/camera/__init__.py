"""Camera sources: where frames come from (step 2 of the flow).

``open_camera(cfg)`` returns a ``Camera`` for ``camera.type``: ``sim`` (synthetic line),
``folder`` (replay) or ``genicam`` (harvesters, imported only when used).
"""

from __future__ import annotations

from inspector.camera.base import Camera
from inspector.config import CameraConfig
from inspector.errors import ConfigError


def open_camera(cfg: CameraConfig) -> Camera:
    """Build (not yet open) the camera source named by ``cfg.type``."""
    if cfg.type == "sim":
        from inspector.camera.sim import SimCamera

        return SimCamera(cfg.sim)
    if cfg.type == "folder":
        from inspector.camera.folder import FolderCamera

        if cfg.folder is None:
            raise ConfigError("camera.type is 'folder' but camera.folder is missing")
        camera: Camera = FolderCamera(cfg.folder)
        return camera
    from inspector.camera.genicam import GenicamCamera

    genicam: Camera = GenicamCamera(cfg.genicam)
    return genicam
