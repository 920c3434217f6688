"""Train the bundled sim-line models and export them to ONNX (engines/sim_*.onnx).

    python tools/train_bundled.py --out engines --device auto [--only seg|anomaly|cls]

Offline tool (needs torch and onnx; the daemon, CI and ``make run`` never import it).
Parts come from ``inspector.sim.render.render_part`` and go through the daemon's own CPU
preprocessing (``inspector.preprocess.cpu.preprocess``: letterbox to 384×480, which for
the sim's 1280×1024 frames is a plain 0.375 resize), so train and serve match. Seeds:
training 4000 (anomaly: 4100), validation 5000; ``docs/bundled-models.md`` evaluates on
seed 9000, never used here.

* ``sim_unet_seg.onnx``: a U-Net (4 levels, 12-96 channels) → ``logits``
  ``[1,4,192,240]`` (background, scratch, spot, missing_hole) at stride 2. Pixel masks
  are derived from the sim's boxes: a missing hole is the disc where the hole should
  be; a scratch or spot is the pixels inside its box that differ from the box's border
  by more than 20 grey levels (after a light blur).
* ``sim_anomaly.onnx``: trained on good parts only, DRAEM-style: the same U-Net with
  one output learns to find synthetic anomalies pasted on good parts (random thin
  lines, blobs, and drilled holes filled with plate texture). The graph smooths the
  map, takes the image score as its maximum, normalises both with anomalib's
  min-max formula (the threshold that maximises F1 on validation parts lands on 0.5)
  and outputs anomalib 2.x's ``pred_score``, ``pred_label``, ``anomaly_map`` and
  ``pred_mask``.
* ``sim_classifier.onnx``: a small CNN with global max pooling → ``logits`` ``[1,2]``
  for ``good`` / ``defect``.

Each file carries ``names``, ``imgsz`` and ``task``-free metadata, so the daemon
recognises it from its outputs alone.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import PreprocessConfig, SimCameraConfig, SimDefectConfig
from inspector.preprocess.cpu import preprocess
from inspector.sim.render import DEFECT_CLASSES, render_part

INPUT_HW = (384, 480)
TRAIN_SEED, ANOMALY_SEED, VAL_SEED = 4000, 4100, 5000
SEG_NAMES = ("background", *DEFECT_CLASSES)


# ----------------------------------------------------------------------------- data
def _mask(image: np.ndarray, labels: Any) -> np.ndarray:
    """Full-resolution class-id mask derived from the sim's boxes (see module doc)."""
    h, w = image.shape
    mask = np.zeros((h, w), np.uint8)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)
    for lb in labels:
        cls = SEG_NAMES.index(lb.class_name)
        x1, y1, x2, y2 = lb.box
        if lb.class_name == "missing_hole":
            centre = (round((x1 + x2) / 2), round((y1 + y2) / 2))
            cv2.circle(mask, centre, round((x2 - x1) / 2 * 0.97), cls, -1)
            continue
        a, b = max(int(x1) - 6, 0), max(int(y1) - 6, 0)
        c, d = min(int(x2) + 7, w), min(int(y2) + 7, h)
        region = blurred[b:d, a:c]
        border = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
        deviates = np.abs(region - np.median(border)) > 20.0
        inner = np.zeros_like(deviates)
        inner[int(y1) - b : int(y2) - b + 1, int(x1) - a : int(x2) - a + 1] = True
        mask[b:d, a:c][deviates & inner] = cls
    return mask


def render(job: tuple[int, int, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """One part at the model input: grey uint8 [H, W], class mask [H, W], defect count."""
    seed, index, rate = job
    cfg = SimCameraConfig(seed=seed, defects=SimDefectConfig(rate=rate, max_per_part=2))
    image, labels = render_part(seed, index, cfg)
    tensor, _ = preprocess(image, "Mono8", INPUT_HW, PreprocessConfig())
    grey = np.rint(tensor[0, 0] * 255.0).astype(np.uint8)
    full = _mask(image, labels)
    small = cv2.resize(full, (INPUT_HW[1], INPUT_HW[0]), interpolation=cv2.INTER_NEAREST)
    # Thin scratches can vanish in a nearest resize: keep any class present in the area.
    for cls in range(1, len(SEG_NAMES)):
        area = cv2.resize((full == cls).astype(np.float32), (INPUT_HW[1], INPUT_HW[0]),
                          interpolation=cv2.INTER_AREA)  # fmt: skip
        small[area >= 0.2] = cls
    return grey, small, len(labels)


def render_set(seed: int, count: int, rate: float, workers: int) -> tuple[np.ndarray, ...]:
    jobs = [(seed, i, rate) for i in range(count)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.map(render, jobs, chunksize=8)
    images = np.stack([p[0] for p in parts])
    masks = np.stack([p[1] for p in parts])
    ng = np.array([p[2] > 0 for p in parts])
    return images, masks, ng


# --------------------------------------------------------------------------- models
def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
    )  # fmt: skip


class UNet(nn.Module):
    """4-level U-Net on the grey channel; output at stride 2."""

    def __init__(self, classes: int, widths: tuple[int, ...] = (12, 24, 48, 96)) -> None:
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 1
        for w in widths:
            self.enc.append(block(cin, w))
            cin = w
        self.dec = nn.ModuleList(
            block(widths[i + 1] + widths[i], widths[i]) for i in range(1, len(widths) - 1)
        )
        self.head = nn.Sequential(block(widths[1] + widths[0], widths[0]),
                                  nn.Conv2d(widths[0], classes, 1))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=1, keepdim=True) * 2.0 - 1.0
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips[-1]
        for i in range(len(self.dec) - 1, -1, -1):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.dec[i](torch.cat([x, skips[i + 1]], 1))
        # x is at stride 2 now: merge the full-resolution features pooled to stride 2.
        out: torch.Tensor = self.head(torch.cat([x, F.max_pool2d(skips[0], 2)], 1))
        return out


class Classifier(nn.Module):
    """Multiple-instance classifier: a defect-evidence map at stride 8 (three strided
    stages, then dilated context), global max pooling, logits (0, evidence) for
    (good, defect). Max pooling suits small defects anywhere on the part."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [
                *(nn.Conv2d(cin, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)),
                *(nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)),
            ]
            cin = w
        for d in (2, 4):
            layers += [nn.Conv2d(cin, cin, 3, 1, d, dilation=d, bias=False),
                       nn.BatchNorm2d(cin), nn.ReLU(True)]  # fmt: skip
        self.features = nn.Sequential(*layers)
        self.evidence = nn.Conv2d(cin, 1, 1)

    def evidence_map(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.evidence(self.features(x.mean(dim=1, keepdim=True) * 2.0 - 1.0))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        defect = torch.amax(self.evidence_map(x), dim=(2, 3))  # [B, 1]
        return torch.cat([torch.zeros_like(defect), defect], dim=1)


class _ClassifierTraining(nn.Module):
    """Training view: logits plus the evidence map, which is also supervised (at stride
    8) with the defect masks so the map learns where defects are, not only whether."""

    def __init__(self, net: Classifier) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emap = self.net.evidence_map(x)
        defect = torch.amax(emap, dim=(2, 3))
        return torch.cat([torch.zeros_like(defect), defect], dim=1), emap


class AnomalyExport(nn.Module):
    """anomalib 2.x outputs around the anomaly U-Net, normalisation baked in."""

    def __init__(self, net: nn.Module, stats: dict[str, float]) -> None:
        super().__init__()
        self.net = net
        self.threshold = stats["threshold"]
        self.lo, self.hi = stats["min"], stats["max"]

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = F.avg_pool2d(torch.sigmoid(self.net(x)), 3, 1, 1)
        return amap.amax(dim=(1, 2, 3)), amap

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        score, amap = self.raw(x)
        span = self.hi - self.lo

        def norm(v: torch.Tensor) -> torch.Tensor:
            return torch.clamp((v - self.threshold) / span + 0.5, 0.0, 1.0)

        pred_score, anomaly_map = norm(score), norm(amap)
        return pred_score, pred_score >= 0.5, anomaly_map, anomaly_map >= 0.5


# ------------------------------------------------------------------------ synthetic
def corrupt(grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paste 1-3 synthetic anomalies on a good part: lines, blobs, filled holes."""
    img = grey.astype(np.float32)
    mask = np.zeros(grey.shape, np.uint8)
    h, w = grey.shape
    plate = np.argwhere((grey > 110) & (grey < 220))
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["line", "blob", "hole"], p=[0.45, 0.35, 0.2])
        y, x = plate[rng.integers(len(plate))] if len(plate) else (h // 2, w // 2)
        m = np.zeros_like(mask)
        if kind == "line":
            length, theta = rng.uniform(12, 90), rng.uniform(0, math.pi)
            dx, dy = math.cos(theta) * length / 2, math.sin(theta) * length / 2
            pts = np.array([[x - dx, y - dy], [x + dx, y + dy]], np.int32)
            cv2.polylines(m, [pts], False, 1, int(rng.integers(1, 3)))
        elif kind == "blob":
            axes = (int(rng.integers(2, 8)), int(rng.integers(2, 8)))
            cv2.ellipse(m, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            n, _, stats, cents = cv2.connectedComponentsWithStats((grey < 70).astype(np.uint8))
            holes = [i for i in range(1, n) if 150 < stats[i, cv2.CC_STAT_AREA] < 700]
            if not holes:
                continue
            i = holes[int(rng.integers(len(holes)))]
            cx, cy = cents[i]
            r = int(math.sqrt(stats[i, cv2.CC_STAT_AREA] / math.pi)) + 3
            cv2.circle(m, (int(cx), int(cy)), r, 1, -1)
            ring = cv2.dilate(m, np.ones((9, 9), np.uint8)) - m
            around = img[(ring > 0) & (grey > 90)]
            value = float(np.median(around)) if around.size else 150.0
            img = np.where(m > 0, value + rng.normal(0, 3, img.shape), img)
            mask |= m
            continue
        soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.7)
        delta = rng.choice([-1.0, 1.0]) * rng.uniform(25, 90)
        img = img + soft * delta
        mask |= m
    return np.clip(img, 0, 255).astype(np.uint8), mask


# ------------------------------------------------------------------------- training
def _batches(n: int, size: int, steps: int, rng: np.random.Generator) -> Any:
    for _ in range(steps):
        yield rng.integers(0, n, size)


def _flip(x: torch.Tensor, y: torch.Tensor | None, rng: np.random.Generator) -> Any:
    if rng.random() < 0.5:
        x = x.flip(-1)
        y = None if y is None else y.flip(-1)
    if rng.random() < 0.5:
        x = x.flip(-2)
        y = None if y is None else y.flip(-2)
    return x, y


def _to_input(u8: torch.Tensor) -> torch.Tensor:
    x = u8.float().div_(255.0)[:, None]
    return x.expand(-1, 3, -1, -1)


def train_seg(data: dict[str, Any], dev: torch.device, steps: int) -> nn.Module:
    images, masks = data["train"][0], data["train"][1]
    x_all = torch.from_numpy(images).to(dev)
    small = masks[:, ::2, ::2]  # stride-2 targets (nearest)
    pooled = torch.from_numpy(masks).to(dev)
    # Keep thin structures at stride 2: max-pool each class's indicator.
    y_all = torch.zeros((len(masks), *small.shape[1:]), dtype=torch.long, device=dev)
    for cls in range(1, len(SEG_NAMES)):
        hit = F.max_pool2d((pooled == cls).float()[:, None], 2)[:, 0] > 0
        y_all[hit] = cls
    net = UNet(len(SEG_NAMES)).to(dev)
    weight = torch.tensor([1.0, 8.0, 8.0, 8.0], device=dev)
    return _fit(net, steps, dev, lambda idx, rng: _seg_batch(x_all, y_all, idx, rng),
                lambda out, y: F.cross_entropy(out, y, weight=weight))  # fmt: skip


def _seg_batch(x_all: torch.Tensor, y_all: torch.Tensor, idx: Any, rng: Any) -> Any:
    t = torch.as_tensor(idx, device=x_all.device)
    x, y = _flip(_to_input(x_all[t]), y_all[t], rng)
    return x, y


def train_cls(data: dict[str, Any], dev: torch.device, steps: int) -> nn.Module:
    images, masks, ng = data["train"]
    x_all = torch.from_numpy(images).to(dev)
    m_all = F.max_pool2d(torch.from_numpy(masks > 0).float()[:, None], 8).to(dev)
    y_all = torch.from_numpy(ng.astype(np.int64)).to(dev)
    net = Classifier().to(dev)
    pos = torch.tensor(10.0, device=dev)

    def batch(idx: Any, rng: np.random.Generator) -> Any:
        t = torch.as_tensor(idx, device=dev)
        x, m = _flip(_to_input(x_all[t]), m_all[t], rng)
        return x, (y_all[t], m)

    def loss(out: Any, y: Any) -> torch.Tensor:
        logits, emap = out
        aux = F.binary_cross_entropy_with_logits(emap, y[1], pos_weight=pos)
        return F.cross_entropy(logits, y[0]) + aux

    _fit(_ClassifierTraining(net), steps, dev, batch, loss)
    return net.eval()


def train_anomaly(data: dict[str, Any], dev: torch.device, steps: int, seed: int) -> nn.Module:
    global _GOOD  # read by the fork workers: set before the pool starts
    _GOOD = data["good"][0]
    net = UNet(1).to(dev)
    rng = np.random.default_rng(seed)
    # A fixed set of synthetic anomalies (2 per good part), made on the CPU cores up front.
    jobs = [(i % len(_GOOD), int(rng.integers(1 << 30))) for i in range(2 * len(_GOOD))]
    with mp.get_context("fork").Pool(max(1, mp.cpu_count())) as pool:
        made = pool.map(_corrupt_job, jobs, chunksize=64)
    xs = torch.from_numpy(np.stack([m[0] for m in made])).to(dev)
    ys = torch.from_numpy(np.stack([m[1] for m in made])).to(dev)

    def batch(idx: Any, r: np.random.Generator) -> Any:
        t = torch.as_tensor(idx, device=dev)
        x, y = _flip(_to_input(xs[t]), ys[t].float()[:, None], r)
        return x, F.max_pool2d(y, 2)

    pos = torch.tensor(20.0, device=dev)
    return _fit(net, steps, dev, batch,
                lambda out, y: F.binary_cross_entropy_with_logits(out, y, pos_weight=pos),
                n=len(xs))  # fmt: skip


_GOOD: np.ndarray | None = None


def _corrupt_job(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    assert _GOOD is not None
    return corrupt(_GOOD[job[0]], np.random.default_rng(job[1]))


def _fit(net: nn.Module, steps: int, dev: torch.device, batch: Any, loss_fn: Any,
         n: int | None = None, size: int = 24) -> nn.Module:  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(0)
    total = n if n is not None else _N_TRAIN
    net.train()
    t0 = time.monotonic()
    for step, idx in enumerate(_batches(total, size, steps, rng)):
        x, y = batch(idx, rng)
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            print(
                f"  step {step:5d} loss {loss.item():.4f} {time.monotonic() - t0:.0f}s", flush=True
            )
    return net.eval()


_N_TRAIN = 0


# ------------------------------------------------------------------ calibration/export
@torch.no_grad()
def anomaly_stats(
    net: nn.Module, images: np.ndarray, ng: np.ndarray, dev: torch.device
) -> dict[str, float]:
    """anomalib's PostProcessor statistics: F1-optimal image threshold, min and max."""
    wrap = AnomalyExport(net, {"threshold": 0.0, "min": 0.0, "max": 1.0}).eval()
    scores, lo, hi = [], math.inf, -math.inf
    for i in range(0, len(images), 32):
        s, amap = wrap.raw(_to_input(torch.from_numpy(images[i : i + 32]).to(dev)))
        scores.append(s.float().cpu().numpy())
        lo, hi = min(lo, float(amap.min())), max(hi, float(amap.max()))
    score = np.concatenate(scores)
    best, thr = -1.0, 0.5
    for t in np.unique(score):
        tp = np.sum((score >= t) & ng)
        fp = np.sum((score >= t) & ~ng)
        fn = np.sum((score < t) & ng)
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        if f1 > best:
            best, thr = f1, float(t)
    print(f"  anomaly: F1 {best:.3f} at raw threshold {thr:.4f}, map min {lo:.4f} max {hi:.4f}")
    return {"threshold": thr, "min": lo, "max": hi, "f1": best}


def export(module: nn.Module, path: Path, outputs: list[str], meta: dict[str, str]) -> None:
    import onnx

    module = module.cpu().eval()
    torch.onnx.export(
        module, (torch.zeros(1, 3, *INPUT_HW),), str(path), input_names=["images"],
        output_names=outputs, opset_version=17, dynamo=False,
    )  # fmt: skip
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {**meta, "imgsz": str(list(INPUT_HW)),
                                        "author": "inspector tools/train_bundled.py"})  # fmt: skip
    onnx.save(model, str(path))
    print(f"  wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    global _N_TRAIN
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("engines"))
    p.add_argument("--device", default="auto")
    p.add_argument("--train", type=int, default=4000, help="labelled training parts")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--only", choices=["seg", "anomaly", "cls"], default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    dev = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.backends.cudnn.benchmark = True
    workers = max(1, mp.cpu_count())
    t0 = time.monotonic()
    data: dict[str, Any] = {"val": render_set(VAL_SEED, 400, 0.3, workers)}
    if args.only in (None, "seg", "cls"):
        data["train"] = render_set(TRAIN_SEED, args.train, 0.5, workers)
        _N_TRAIN = args.train
    if args.only in (None, "anomaly"):
        data["good"] = render_set(ANOMALY_SEED, args.train, 0.0, workers)
    print(f"rendered in {time.monotonic() - t0:.0f}s on {workers} cores; device {dev}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    if args.only in (None, "seg"):
        print("segmentation U-Net")
        net = train_seg(data, dev, args.steps)
        names = str(dict(enumerate(SEG_NAMES)))
        export(net, args.out / "sim_unet_seg.onnx", ["logits"], {"names": names})
    if args.only in (None, "cls"):
        print("classifier")
        net = train_cls(data, dev, args.steps)
        export(
            net, args.out / "sim_classifier.onnx", ["logits"], {"names": "{0: 'good', 1: 'defect'}"}
        )
    if args.only in (None, "anomaly"):
        print("anomaly (good parts only)")
        net = train_anomaly(data, dev, args.steps, seed=1)
        val_images, _, val_ng = data["val"]
        stats = anomaly_stats(net, val_images, val_ng, dev)
        report["anomaly"] = stats
        outs = ["pred_score", "pred_label", "anomaly_map", "pred_mask"]
        export(
            AnomalyExport(net, stats),
            args.out / "sim_anomaly.onnx",
            outs,
            {"names": "{0: 'anomaly'}"},
        )
    (args.out / "train_bundled.json").write_text(json.dumps(report, indent=1))
    print(f"done in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
