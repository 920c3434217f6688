"""A YOLOv8n-size detector in plain PyTorch, for GPU benchmarks (no Ultralytics needed).

The same layers as Ultralytics' ``yolov8n.yaml`` (width 0.25, depth 0.33): Conv/BN/SiLU,
C2f blocks, SPPF, the PAN neck and the decoupled anchor-free head with DFL, returning
the export layout ``[1, 4 + nc, 8400]`` at 640×640 (cx, cy, w, h in input pixels, then
sigmoid class scores). Its parameters load from an Ultralytics ``DetectionModel``'s
``state_dict`` name for name (``tools/check_yolov8n_net.py`` checks it against
Ultralytics 8.4 on the CPU); untrained, the head's biases are set as Ultralytics
initialises them, so the scores look like a fresh YOLOv8n's.

Used by ``benchmarks/pipeline_gpu.py``, which traces it on the GPU machine: a TorchScript
file traced there needs no torch version match between machines.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c2, 3)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    def __init__(self, nc: int, ch: tuple[int, ...], imgsz: int) -> None:
        super().__init__()
        self.nc, self.reg_max = nc, 16
        self.stride = (8, 16, 32)
        c2, c3 = max(16, ch[0] // 4, 64), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 64, 1)) for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
        )
        self.dfl = nn.Conv2d(16, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(16, dtype=torch.float).view(1, 16, 1, 1)
        anchors, strides = [], []
        for s in self.stride:
            n = imgsz // s
            sy, sx = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((n * n, 1), float(s)))
        self.register_buffer("anchors", torch.cat(anchors).T.unsqueeze(0), persistent=False)
        self.register_buffer("strides", torch.cat(strides).T.unsqueeze(0), persistent=False)
        for a, b, s in zip(self.cv2, self.cv3, self.stride, strict=True):  # Ultralytics bias_init
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (imgsz / s) ** 2)

    def forward(self, xs: list[Tensor]) -> Tensor:
        b = xs[0].shape[0]
        y = torch.cat(
            [
                torch.cat((self.cv2[i](x), self.cv3[i](x)), 1).view(b, 64 + self.nc, -1)
                for i, x in enumerate(xs)
            ],
            2,
        )
        box, cls = y.split((64, self.nc), 1)
        dist = self.dfl(box.view(b, 4, 16, -1).transpose(2, 1).softmax(1)).view(b, 4, -1)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((xywh, cls.sigmoid()), 1)


class YOLOv8n(nn.Module):
    """``yolov8n.yaml`` as one module; ``model.<i>`` matches Ultralytics' layer indices."""

    def __init__(self, nc: int = 80, imgsz: int = 640) -> None:
        super().__init__()
        self.model = nn.ModuleList(
            [
                Conv(3, 16, 3, 2),  # 0
                Conv(16, 32, 3, 2),  # 1
                C2f(32, 32, 1, True),  # 2
                Conv(32, 64, 3, 2),  # 3
                C2f(64, 64, 2, True),  # 4  P3
                Conv(64, 128, 3, 2),  # 5
                C2f(128, 128, 2, True),  # 6  P4
                Conv(128, 256, 3, 2),  # 7
                C2f(256, 256, 1, True),  # 8
                SPPF(256, 256, 5),  # 9  P5
                nn.Upsample(None, 2, "nearest"),  # 10
                nn.Identity(),  # 11 concat P4
                C2f(384, 128, 1, False),  # 12
                nn.Upsample(None, 2, "nearest"),  # 13
                nn.Identity(),  # 14 concat P3
                C2f(192, 64, 1, False),  # 15 out P3
                Conv(64, 64, 3, 2),  # 16
                nn.Identity(),  # 17 concat 12
                C2f(192, 128, 1, False),  # 18 out P4
                Conv(128, 128, 3, 2),  # 19
                nn.Identity(),  # 20 concat 9
                C2f(384, 256, 1, False),  # 21 out P5
                Detect(nc, (64, 128, 256), imgsz),  # 22
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        x = m[2](m[1](m[0](x)))
        p3 = m[4](m[3](x))
        p4 = m[6](m[5](p3))
        p5 = m[9](m[8](m[7](p4)))
        h12 = m[12](torch.cat((m[10](p5), p4), 1))
        o3 = m[15](torch.cat((m[13](h12), p3), 1))
        o4 = m[18](torch.cat((m[16](o3), h12), 1))
        o5 = m[21](torch.cat((m[19](o4), p5), 1))
        out: Tensor = m[22]([o3, o4, o5])
        return out
