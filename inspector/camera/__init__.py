"""Camera sources: where frames come from (step 2 of the flow).

``open_camera(cfg)`` returns a ``Camera`` for ``camera.type``, looked up in ``CAMERAS``:
``sim`` (the synthetic line of ``inspector/sim/``), ``folder`` (replay) or ``genicam``
(harvesters). Each module is imported only when its type is configured.
``probe_frame(cfg)`` makes a synthetic frame of the size and pixel format the camera
will deliver, for the start-up warm-up of the whole inspection path.
"""

from __future__ import annotations

import numpy as np

from inspector.camera.base import Camera, FrameAllocator
from inspector.config import CameraConfig
from inspector.errors import CameraError, ConfigError, FrameError
from inspector.registry import Registry
from inspector.types import Frame

CAMERAS = Registry(
    "camera type",
    {
        "sim": "inspector.sim.camera:SimCamera",
        "folder": "inspector.camera.folder:FolderCamera",
        "genicam": "inspector.camera.genicam:GenicamCamera",
    },
)

#: Frame size assumed when the config does not say (a GenICam camera's own default).
DEFAULT_HW = (1024, 1280)


def open_camera(cfg: CameraConfig, *, alloc: FrameAllocator | None = None) -> Camera:
    """Build (not yet open) the camera source named by ``cfg.type``; its frames land in
    memory from ``alloc`` (the GPU's pinned frame pool) when one is given."""
    if cfg.type == "folder" and cfg.folder is None:
        raise ConfigError("camera.type is 'folder' but camera.folder is missing")
    settings = {"sim": cfg.sim, "folder": cfg.folder, "genicam": cfg.genicam}[cfg.type]
    camera: Camera = CAMERAS.load(cfg.type)(settings, alloc=alloc)
    return camera


def frame_spec(cfg: CameraConfig) -> tuple[int, int, str]:
    """(height, width, pixel format) of the frames the camera will hand to inspection.

    sim: its config; folder: the first image's header (else DEFAULT_HW); genicam: the
    Width, Height and PixelFormat features it sets (else DEFAULT_HW, Mono8).
    """
    if cfg.type == "sim":
        return cfg.sim.height, cfg.sim.width, cfg.sim.pixel_format
    if cfg.type == "folder" and cfg.folder is not None:
        from inspector.camera.folder import list_images
        from inspector.camera.header import read_header

        try:
            first = read_header(list_images(cfg.folder.path)[0])
            return first.height, first.width, cfg.folder.pixel_format
        except (CameraError, IndexError):  # the camera's own open says what is wrong
            return (*DEFAULT_HW, cfg.folder.pixel_format)
    return _genicam_spec(cfg)


def _genicam_spec(cfg: CameraConfig) -> tuple[int, int, str]:
    from inspector.camera.convert import layout_of

    features = {k: v for entry in cfg.genicam.features for k, v in entry.items()}
    try:
        height = int(features.get("Height", DEFAULT_HW[0]))
        width = int(features.get("Width", DEFAULT_HW[1]))
        out_format = layout_of(str(features.get("PixelFormat", "Mono8"))).out_format
    except (ValueError, TypeError, FrameError):  # the camera's own open says what is wrong
        return (*DEFAULT_HW, "Mono8")
    return height, width, out_format


def probe_frame(cfg: CameraConfig) -> Frame:
    """A synthetic frame shaped like the camera's: a smooth mid-grey gradient (80-176).

    Smooth, not noise: detectors light up on noise (the demo detector finds 2,588
    candidates above 0.25 on a noise frame, 93 on this one), and the device NMS sorts at
    most 1,024, so a noise frame would stop a GPU line's start for a frame no camera
    delivers."""
    height, width, pixel_format = frame_spec(cfg)
    y = np.linspace(0.0, 48.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 48.0, width, dtype=np.float32)[None, :]
    plane = (80.0 + y + x).astype(np.uint8)
    image = np.repeat(plane[:, :, None], 3, axis=2) if pixel_format in ("BGR8", "RGB8") else plane
    return Frame(image, pixel_format, frame_id=0, t_grab_ns=0, source_name="warm-up")
