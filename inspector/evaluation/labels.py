"""Ground truth for ``inspector eval``: which parts are defective (NG), per image name.

Two formats are read:

* the project's JSON (``inspector.camera.folder``): ``{"part.png": [[class, x1, y1, x2,
  y2], ...]}``, ``[]`` for a good part;
* Ultralytics' dataset layout: a folder of ``<image stem>.txt`` files, one line per
  object (``class cx cy w h``, normalised). An image with an empty or missing txt file
  is a good part, as Ultralytics reads it. Given ``.../images/val`` as the images, the
  labels folder defaults to ``.../labels/val``.

Only part-level truth is needed here: escape and overkill are decisions about parts.
"""

from __future__ import annotations

from pathlib import Path

from inspector.camera.folder import list_images, load_labels
from inspector.errors import ConfigError

#: image file name → True for a defective part, False for a good one.
Truth = dict[str, bool]


def yolo_labels_dir(images: Path) -> Path:
    """The Ultralytics labels folder that goes with an images folder."""
    parts = list(images.resolve().parts)
    if "images" not in parts:
        raise ConfigError(f"{images}: not under an 'images' folder; pass --labels DIR")
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts)


def _yolo_line_ok(line: str) -> bool:
    fields = line.split()
    if len(fields) < 5:
        return False
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def read_yolo(images: Path, labels: Path) -> Truth:
    """Part truth from Ultralytics txt labels; a malformed line is a ConfigError."""
    if not labels.is_dir():
        raise ConfigError(f"labels folder {labels} does not exist")
    truth: Truth = {}
    for image in list_images(images):
        txt = labels / f"{image.stem}.txt"
        lines = [ln for ln in txt.read_text().splitlines() if ln.strip()] if txt.exists() else []
        bad = [ln for ln in lines if not _yolo_line_ok(ln)]
        if bad:
            raise ConfigError(f"{txt}: not 'class cx cy w h ...': {bad[0]!r}")
        truth[image.name] = bool(lines)
    return truth


def read_truth(images: Path, labels: Path | None) -> Truth:
    """Truth for every image of ``images``: JSON file, YOLO txt folder, or the default
    Ultralytics labels folder. Images without truth are refused: they cannot be scored."""
    if labels is not None and labels.is_file():
        truth = {name: bool(found) for name, found in load_labels(labels).items()}
    else:
        truth = read_yolo(images, labels if labels is not None else yolo_labels_dir(images))
    names = [p.name for p in list_images(images)]
    missing = [n for n in names if n not in truth]
    if missing:
        raise ConfigError(f"no label for {len(missing)} image(s), e.g. {missing[0]}")
    if not names:
        raise ConfigError(f"no images in {images}")
    return {n: truth[n] for n in names}
