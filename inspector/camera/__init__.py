"""Camera sources: where frames come from (step 2 of the flow).

``open_camera(cfg)`` returns a ``Camera`` for ``camera.type``: ``sim`` (synthetic line),
``folder`` (replay) or ``genicam`` (harvesters, imported only when used).
"""

from __future__ import annotations

from inspector.camera.base import Camera, FrameAllocator
from inspector.config import CameraConfig
from inspector.errors import ConfigError


def open_camera(cfg: CameraConfig, *, alloc: FrameAllocator | None = None) -> Camera:
    """Build (not yet open) the camera source named by ``cfg.type``; its frames land in
    memory from ``alloc`` (the GPU's pinned frame pool) when one is given."""
    if cfg.type == "sim":
        from inspector.camera.sim import SimCamera

        return SimCamera(cfg.sim, alloc=alloc)
    if cfg.type == "folder":
        from inspector.camera.folder import FolderCamera

        if cfg.folder is None:
            raise ConfigError("camera.type is 'folder' but camera.folder is missing")
        camera: Camera = FolderCamera(cfg.folder, alloc=alloc)
        return camera
    from inspector.camera.genicam import GenicamCamera

    genicam: Camera = GenicamCamera(cfg.genicam, alloc=alloc)
    return genicam
