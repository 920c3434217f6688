"""What the web page draws over a part's image: one shape list, two renderers.

    part record (findings) + recipe rules (+ ground truth) ─▶ shapes() ─▶ page (SVG)
                                                                      └─▶ render() (JPEG download)

``shapes`` is the one place that decides what is drawn, in frame pixels: the findings
that decided the verdict (boxes with class and confidence; blobs of segmentation and
anomaly models as their bounding boxes with their area), the recipe's ROI include
polygons and excluded zones, and the ground truth when the camera knows it (sim line,
labelled replay). The page draws the list as SVG over the image; ``render`` burns the
same list into a copy of the frame for the annotated download.

Not drawn, because the findings do not carry them today: segmentation masks and anomaly
heat maps (a finding has a box and an area, not its pixels).

``to_jpeg`` encodes a frame (any pixel format the daemon accepts) scaled to the page's
width; it runs in the page's encoder thread, never in the cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from inspector.config import RecipeConfig
from inspector.preprocess.cpu import to_color
from inspector.types import Label

Shape = dict[str, Any]
_BLOB_FAMILIES = ("segmentation", "anomaly")

# BGR colours of the raster renderer; the page's CSS uses the same hues per role.
_COLOURS = {
    "finding": (40, 40, 235),
    "blob": (0, 140, 255),
    "truth": (230, 200, 0),
    "roi_include": (60, 200, 60),
    "roi_exclude": (160, 160, 160),
}


def shapes(
    findings: Iterable[Mapping[str, Any]],
    recipe: RecipeConfig | None,
    truth: Sequence[Label] | None = None,
) -> list[Shape]:
    """Shapes in frame pixels: ROI polygons first (under), then truth, then findings."""
    out: list[Shape] = []
    families = {m.name: m.family for m in recipe.models} if recipe else {}
    if recipe is not None:
        for poly in recipe.rules.roi_include:
            out.append(_polygon("roi_include", poly, "ROI"))
        for poly in recipe.rules.roi_exclude:
            out.append(_polygon("roi_exclude", poly, "excluded"))
    for lb in truth or ():
        out.append({"role": "truth", "box": [round(c, 1) for c in lb.box], "label": lb.class_name})
    for f in findings:
        blob = families.get(str(f.get("model", ""))) in _BLOB_FAMILIES or _measured(f)
        label = f"{f['class']} {float(f['confidence']):.2f}"
        if blob:
            label += f" · {float(f.get('area_px', 0)):.0f} px²"
        out.append(
            {
                "role": "blob" if blob else "finding",
                "box": [float(c) for c in f["box"]],
                "label": label,
                "class": str(f["class"]),
            }
        )
    return out


def _measured(finding: Mapping[str, Any]) -> bool:
    """Whether a finding's area was measured in pixels (a mask or map blob, family 'auto'
    included): a measured area is smaller than its box, a box-only finding's equals it."""
    x1, y1, x2, y2 = (float(c) for c in finding["box"])
    box_area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = finding.get("area_px")
    return area is not None and float(area) < 0.98 * box_area - 1.0


def _polygon(role: str, points: Sequence[tuple[float, float]], label: str) -> Shape:
    return {"role": role, "points": [[round(x, 1), round(y, 1)] for x, y in points], "label": label}


def to_display(image: npt.NDArray[np.uint8], pixel_format: str) -> npt.NDArray[np.uint8]:
    """Mono8 as it is, colour as BGR (Bayer mosaics demosaiced, RGB8 reordered)."""
    img = to_color(image, pixel_format)
    return img[:, :, ::-1] if pixel_format == "RGB8" else img


def to_jpeg(image: npt.NDArray[np.uint8], pixel_format: str, width: int, quality: int) -> bytes:
    """Encode a frame as JPEG, scaled down to ``width`` (never up)."""
    img: npt.NDArray[Any] = to_display(image, pixel_format)
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def render(image: npt.NDArray[np.uint8], drawn: Sequence[Shape]) -> npt.NDArray[np.uint8]:
    """A BGR copy of ``image`` with ``drawn`` burnt in (the annotated download)."""
    out: npt.NDArray[np.uint8] = np.ascontiguousarray(
        cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image, dtype=np.uint8
    ).copy()
    thick = max(2, round(out.shape[1] / 640))
    scale = out.shape[1] / 1600
    for s in drawn:
        colour = _COLOURS.get(s["role"], (255, 0, 255))
        if "points" in s:
            pts = np.round(np.asarray(s["points"], np.float64)).astype(np.int32)
            if s["role"] == "roi_exclude":
                shaded = out.copy()
                cv2.fillPoly(shaded, [pts], colour)
                cv2.addWeighted(shaded, 0.35, out, 0.65, 0, dst=out)
            cv2.polylines(out, [pts], True, colour, thick)
            anchor = (int(pts[:, 0].min()), int(pts[:, 1].min()))
        else:
            x1, y1, x2, y2 = (round(c) for c in s["box"])
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
            anchor = (x1, y1)
        cv2.putText(
            out,
            s["label"],
            (anchor[0], max(12, anchor[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.4, scale),
            colour,
            max(1, thick // 2),
            cv2.LINE_AA,
        )
    return out
