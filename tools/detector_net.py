"""The demo detector's network and loss (torch; used by tools/train_detector.py only).

A small anchor-free, YOLOv8-style detector sized for a 30 ms CPU cycle budget:

* backbone: strided 3×3 convolutions down to stride 32, with depthwise-separable
  residual blocks (ReLU: cheaper than SiLU on CPUs, and TensorRT/ORT fuse it);
* neck: a top-down feature pyramid (nearest upsampling + add) so the stride-8 head,
  which finds 5 px spots, also sees the whole plate (a missing hole is only "missing"
  relative to the hole pattern around it);
* heads at strides 8, 16 and 32, each predicting (dx, dy, log w, log h) and one logit
  per class for every grid cell.

``forward`` returns exactly the Ultralytics YOLOv8 export layout: one tensor
``[B, 4 + nc, N]`` with rows cx, cy, w, h in model-input pixels, then sigmoid class
scores (no objectness); N = 80² + 40² + 20² = 8400 at 640×640, stride-8 cells first.
The network is fully convolutional: the same weights serve any input whose sides are
multiples of 32 (``imgsz`` may be ``(h, w)``; only the decoding grid depends on it).

The loss assigns each ground-truth box to the grid cells near its centre (within 1.5
strides, or within the box for long scratches) on the pyramid levels whose size range
fits the box, then uses BCE for classes and GIoU + L1 for boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDES = (8, 16, 32)
#: Longest box side (model-input pixels) each level learns: [lo, hi).
LEVEL_RANGES = ((0.0, 64.0), (24.0, 160.0), (96.0, 1e9))


class ConvBnAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class DwBlock(nn.Module):
    """Depthwise k×k + pointwise 1×1, residual."""

    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.dw = ConvBnAct(c, c, k, 1, groups=c)
        self.pw = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.pw(self.dw(x)))


class Head(nn.Module):
    def __init__(self, c: int, nc: int) -> None:
        super().__init__()
        self.block = DwBlock(c)
        self.box = nn.Conv2d(c, 4, 1)
        self.cls = nn.Conv2d(c, nc, 1)
        nn.init.constant_(self.cls.bias, -4.6)  # start at p≈0.01: few cells are defects
        nn.init.zeros_(self.box.weight)
        nn.init.zeros_(self.box.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self.block(x)
        return self.box(y), self.cls(y)


class DemoDetector(nn.Module):
    """See the module docstring. ``width`` scales every channel count."""

    def __init__(self, nc: int = 3, imgsz: int | tuple[int, int] = 640, width: int = 8) -> None:
        super().__init__()
        w = width
        self.nc = nc
        self.stem = nn.Sequential(
            ConvBnAct(3, w, 3, 2),  # /2
            ConvBnAct(w, 2 * w, 3, 2),  # /4
        )
        self.s8 = nn.Sequential(ConvBnAct(2 * w, 4 * w, 3, 2), DwBlock(4 * w), DwBlock(4 * w))
        self.s16 = nn.Sequential(ConvBnAct(4 * w, 8 * w, 3, 2), DwBlock(8 * w), DwBlock(8 * w))
        self.s32 = nn.Sequential(
            ConvBnAct(8 * w, 12 * w, 3, 2), DwBlock(12 * w, 5), DwBlock(12 * w, 5)
        )
        c = 6 * w
        self.lat32 = ConvBnAct(12 * w, c, 1)
        self.lat16 = ConvBnAct(8 * w, c, 1)
        self.lat8 = ConvBnAct(4 * w, c, 1)
        self.fuse16 = DwBlock(c, 5)
        self.fuse8 = DwBlock(c, 5)
        self.heads = nn.ModuleList(Head(c, nc) for _ in STRIDES)
        grid, stride = make_grid(imgsz)
        self.register_buffer("grid", grid, persistent=False)  # [2, N] cell index (x, y)
        self.register_buffer("stride", stride, persistent=False)  # [1, N]

    def raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Box parameters [B, 4, N] and class logits [B, nc, N] (training)."""
        x8 = self.s8(self.stem(x))
        x16 = self.s16(x8)
        x32 = self.s32(x16)
        p32 = self.lat32(x32)
        p16 = self.fuse16(self.lat16(x16) + F.interpolate(p32, scale_factor=2.0))
        p8 = self.fuse8(self.lat8(x8) + F.interpolate(p16, scale_factor=2.0))
        boxes, logits = [], []
        for head, p in zip(self.heads, (p8, p16, p32), strict=True):
            b, c = head(p)
            boxes.append(b.flatten(2))
            logits.append(c.flatten(2))
        return torch.cat(boxes, 2), torch.cat(logits, 2)

    def decode(self, box: Tensor) -> Tensor:
        """(dx, dy, log w, log h) per cell → cx, cy, w, h in input pixels, [B, 4, N]."""
        xy = (self.grid + 0.5 + box[:, :2]) * self.stride
        wh = torch.exp(box[:, 2:].clamp(-6.0, 6.0)) * self.stride
        return torch.cat((xy, wh), 1)

    def forward(self, x: Tensor) -> Tensor:
        box, logits = self.raw(x)
        return torch.cat((self.decode(box), logits.sigmoid()), 1)


def make_grid(imgsz: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Cell indices [2, N] and cell strides [1, N], stride-8 cells first (Ultralytics order),
    for a square side or an ``(h, w)`` input."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    grids, strides = [], []
    for s in STRIDES:
        ys, xs = torch.meshgrid(torch.arange(h // s), torch.arange(w // s), indexing="ij")
        grids.append(torch.stack((xs.flatten(), ys.flatten())).float())
        strides.append(torch.full((1, (h // s) * (w // s)), float(s)))
    return torch.cat(grids, 1), torch.cat(strides, 1)


def _level_of_cells(stride: Tensor) -> Tensor:
    return torch.bucketize(stride[0], torch.tensor(STRIDES, device=stride.device), right=False)


@torch.no_grad()
def assign(
    model: DemoDetector, gt_box: Tensor, gt_cls: Tensor, gt_valid: Tensor, radius: float = 1.5
) -> tuple[Tensor, Tensor]:
    """Match cells to ground truth. gt_box [B, M, 4] xyxy input px, gt_cls [B, M], valid [B, M].

    Returns the matched gt index per cell [B, N] (-1: background) and the positive mask.
    """
    centres = (model.grid + 0.5) * model.stride  # [2, N]
    stride = model.stride[0]  # [N]
    level = _level_of_cells(model.stride)
    gcx = (gt_box[..., 0] + gt_box[..., 2]) / 2  # [B, M]
    gcy = (gt_box[..., 1] + gt_box[..., 3]) / 2
    gw = gt_box[..., 2] - gt_box[..., 0]
    gh = gt_box[..., 3] - gt_box[..., 1]
    side = torch.maximum(gw, gh)
    reach = radius * stride[None, None, :]  # [1, 1, N]
    near_x = (centres[0][None, None] - gcx[..., None]).abs() < torch.maximum(
        reach, gw[..., None] / 2
    )
    near_y = (centres[1][None, None] - gcy[..., None]).abs() < torch.maximum(
        reach, gh[..., None] / 2
    )
    lo = torch.tensor([r[0] for r in LEVEL_RANGES], device=gt_box.device)[level]
    hi = torch.tensor([r[1] for r in LEVEL_RANGES], device=gt_box.device)[level]
    fits = (side[..., None] >= lo) & (side[..., None] < hi)
    cand = near_x & near_y & fits & gt_valid[..., None]  # [B, M, N]
    area = (gw * gh).clamp(min=1.0)[..., None].expand_as(cand)
    area = torch.where(cand, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)  # smallest box wins a shared cell
    positive = torch.isfinite(best_area)
    return torch.where(positive, best, torch.full_like(best, -1)), positive


def giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU of matching xyxy boxes [K, 4]."""
    ix1, iy1 = torch.maximum(a[:, 0], b[:, 0]), torch.maximum(a[:, 1], b[:, 1])
    ix2, iy2 = torch.minimum(a[:, 2], b[:, 2]), torch.minimum(a[:, 3], b[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter + 1e-6
    cx1, cy1 = torch.minimum(a[:, 0], b[:, 0]), torch.minimum(a[:, 1], b[:, 1])
    cx2, cy2 = torch.maximum(a[:, 2], b[:, 2]), torch.maximum(a[:, 3], b[:, 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    iou = inter / union
    return iou - (hull - union) / hull


def detection_loss(
    model: DemoDetector, images: Tensor, gt_box: Tensor, gt_cls: Tensor, gt_valid: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and its parts (detached, for logging) for one batch."""
    box, logits = model.raw(images)
    box, logits = box.float(), logits.float()  # loss maths in fp32 under autocast
    match, positive = assign(model, gt_box, gt_cls, gt_valid)
    n_pos = positive.sum().clamp(min=1).float()
    target = torch.zeros_like(logits)  # [B, nc, N]
    b_idx, n_idx = positive.nonzero(as_tuple=True)
    m_idx = match[b_idx, n_idx]
    target[b_idx, gt_cls[b_idx, m_idx], n_idx] = 1.0
    cls_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / n_pos
    if b_idx.numel() == 0:
        return cls_loss, {"cls": cls_loss.detach(), "box": torch.zeros_like(cls_loss)}
    pred = model.decode(box)[b_idx, :, n_idx]  # [K, 4] cx cy w h
    pred_xyxy = torch.cat((pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2), 1)
    tgt = gt_box[b_idx, m_idx]
    box_loss = (1.0 - giou(pred_xyxy, tgt)).mean()
    stride = model.stride[0, n_idx][:, None]
    l1 = (F.l1_loss(pred_xyxy / stride, tgt / stride, reduction="none")).mean()
    total = cls_loss + 2.0 * box_loss + 0.25 * l1
    return total, {"cls": cls_loss.detach(), "box": box_loss.detach()}
