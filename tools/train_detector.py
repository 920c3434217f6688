"""Train the bundled demo detector on the simulated line; export ONNX and TorchScript.

    .venv/bin/python tools/train_detector.py --out engines --device auto

Offline tool (needs torch; the daemon, CI and ``make run`` never import it). Training
inputs are built with the daemon's own CPU preprocessing (``inspector.preprocess.cpu``:
letterbox 640×640, pad 114, RGB, 0..1), so what the model learns on is byte for byte
what it is served. Parts come from ``inspector.sim.render.render_part`` with seeds that
``tools/eval_detector.py`` never uses for its held-out set, in a mix of pixel formats
(Mono8, BGR8, BayerRG8) so one model serves all three.

Outputs in ``--out``: ``demo_detector.onnx`` (opset 17, batch 1, Ultralytics YOLOv8
layout and metadata) and ``demo_detector.ts`` (TorchScript trace returning the same
tensor). The network and loss live in ``tools/detector_net.py``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import torch

from inspector.config import PreprocessConfig, SimCameraConfig, SimDefectConfig
from inspector.preprocess.cpu import preprocess
from inspector.sim.render import DEFECT_CLASSES, render_part

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector_net import DemoDetector, detection_loss, make_grid

TRAIN_SEED = 1000  # training parts; eval_detector.py holds out seed 9000
VAL_SEED = 2000  # quick validation during training
FORMATS = ("Mono8", "Mono8", "Mono8", "BGR8", "BayerRG8")  # index % 5 picks one

Sample = tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.int64]]


def render_sample(seed: int, index: int, rate: float, imgsz: int) -> Sample:
    """One part as the model sees it: uint8 CHW input (×1/255 = the daemon's tensor),
    boxes in model-input pixels (xyxy) and class ids."""
    fmt = FORMATS[index % len(FORMATS)]
    cfg = SimCameraConfig(
        seed=seed,
        pixel_format=fmt,  # type: ignore[arg-type]  # one of the Literal values
        defects=SimDefectConfig(rate=rate, max_per_part=3),
    )
    image, labels = render_part(seed, index, cfg)
    tensor, geo = preprocess(image, fmt, (imgsz, imgsz), PreprocessConfig())
    u8 = np.rint(tensor[0] * 255.0).astype(np.uint8)  # exact: the tensor is k/255
    boxes = np.array([lb.box for lb in labels], np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * geo.scale_x + geo.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * geo.scale_y + geo.pad_y
    cls = np.array([DEFECT_CLASSES.index(lb.class_name) for lb in labels], np.int64)
    return u8, boxes, cls


def _render_job(args: tuple[int, int, float, int]) -> Sample:
    return render_sample(*args)


def render_set(seed: int, count: int, rate: float, imgsz: int, workers: int) -> list[Sample]:
    """Render ``count`` parts of ``seed`` in parallel (one process per core)."""
    jobs = [(seed, i, rate, imgsz) for i in range(count)]
    if workers <= 1:
        return [_render_job(j) for j in jobs]
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_render_job, jobs, chunksize=16)


def to_tensors(
    samples: list[Sample], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack images (uint8, on device) and pad ground truth to [N, M, ...]."""
    m = max(1, max(len(s[2]) for s in samples))
    n = len(samples)
    boxes = torch.zeros((n, m, 4))
    cls = torch.zeros((n, m), dtype=torch.long)
    valid = torch.zeros((n, m), dtype=torch.bool)
    for i, (_, b, c) in enumerate(samples):
        k = len(c)
        boxes[i, :k] = torch.from_numpy(b)
        cls[i, :k] = torch.from_numpy(c)
        valid[i, :k] = True
    images = torch.from_numpy(np.stack([s[0] for s in samples])).to(device)
    return images, boxes.to(device), cls.to(device), valid.to(device)


def flip_batch(
    x: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal/vertical flips per image (the plate and hole grid are symmetric)."""
    size = x.shape[-1]
    b = boxes.clone()
    for dim, cols in ((3, (0, 2)), (2, (1, 3))):
        flip = torch.rand(x.shape[0], generator=gen, device=gen.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(dim), x)
        lo, hi = b[..., cols[0]].clone(), b[..., cols[1]].clone()
        b[..., cols[0]] = torch.where(flip[:, None], size - hi, lo)
        b[..., cols[1]] = torch.where(flip[:, None], size - lo, hi)
    return x, b


@torch.no_grad()
def part_scores(model: DemoDetector, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Highest class score per part: the daemon calls a part NG if it is ≥ the threshold."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float() * (1.0 / 255.0)
        out.append(model(x)[:, 4:].amax(dim=(1, 2)).float())
    model.train()
    return torch.cat(out)


def report(model: DemoDetector, images: torch.Tensor, valid: torch.Tensor, thr: float) -> str:
    scores = part_scores(model, images)
    defective = valid.any(1)
    ng = scores >= thr
    escape = (defective & ~ng).sum().item() / max(1, int(defective.sum()))
    overkill = (~defective & ng).sum().item() / max(1, int((~defective).sum()))
    return f"escape {escape:.2%} overkill {overkill:.2%} (thr {thr})"


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to 2% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def train(args: argparse.Namespace, device: torch.device) -> DemoDetector:
    t0 = time.monotonic()
    train_set = render_set(TRAIN_SEED, args.parts, args.rate, args.imgsz, args.workers)
    val_set = render_set(VAL_SEED, args.val_parts, 0.3, args.imgsz, args.workers)
    print(f"rendered {len(train_set)}+{len(val_set)} parts in {time.monotonic() - t0:.0f} s")
    images, boxes, cls, valid = to_tensors(train_set, device)
    v_images, _, _, v_valid = to_tensors(val_set, device)
    del train_set, val_set
    model = DemoDetector(nc=len(DEFECT_CLASSES), imgsz=args.imgsz, width=args.width).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(images) / args.batch)
    epochs, step = args.epochs, 0
    gen = torch.Generator(device=device).manual_seed(0)
    amp = device.type == "cuda"
    t_train = time.monotonic()
    epoch = 0
    while epoch < epochs:
        perm = torch.randperm(len(images), generator=gen, device=device)
        sums = torch.zeros(3, device=device)
        for i in range(0, len(images), args.batch):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, epochs * steps_per_epoch, steps_per_epoch, args.lr)
            idx = perm[i : i + args.batch]
            x = images[idx].float() * (1.0 / 255.0)
            x, b = flip_batch(x, boxes[idx], gen)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = detection_loss(model, x, b, cls[idx], valid[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            step += 1
            sums += torch.stack((loss.detach().float(), parts["cls"], parts["box"]))
        epoch += 1
        if epoch == 1 and args.budget_s > 0:  # fit the schedule into the time budget
            per_epoch = time.monotonic() - t_train
            fit = int((args.budget_s - (time.monotonic() - t0)) / per_epoch) + 1
            epochs = max(2, min(args.epochs, fit))
            print(f"epoch takes {per_epoch:.1f} s: training {epochs} epochs", flush=True)
        mean = (sums / steps_per_epoch).tolist()
        line = f"epoch {epoch:3d} loss {mean[0]:.4f} cls {mean[1]:.4f} box {mean[2]:.4f}"
        if epoch % args.eval_every == 0 or epoch == epochs:
            line += " | val " + report(model, v_images, v_valid, 0.5)
        print(f"{line} | {time.monotonic() - t0:.0f} s", flush=True)
    for thr in (0.3, 0.4, 0.6, 0.7):
        print("val " + report(model, v_images, v_valid, thr))
    return model.eval()


def set_input(model: DemoDetector, hw: tuple[int, int]) -> None:
    """Point the model's decoding grid at an ``(h, w)`` input (the weights do not change)."""
    grid, stride = make_grid(hw)
    model.grid, model.stride = grid, stride


def export(model: DemoDetector, out: Path, imgsz: int, onnx_hw: tuple[int, int]) -> None:
    """Write demo_detector.onnx (``onnx_hw`` input, Ultralytics metadata) and
    demo_detector.ts (``imgsz`` square input).

    The ONNX model is what the CPU demo and TensorRT run: exported at the sim camera's
    aspect (1280×1024 → 512×640) it has no letterbox padding to compute, 20 % fewer
    multiply-accumulates than 640×640 for the same weights and the same findings. The
    TorchScript trace stays square: the GPU tests and benchmarks were measured on it."""
    import onnx

    model = model.float().cpu().eval().to(memory_format=torch.contiguous_format)
    set_input(model, onnx_hw)
    onnx_path = out / "demo_detector.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, *onnx_hw),),
        str(onnx_path),
        opset_version=17,
        input_names=["images"],
        output_names=["output0"],
        dynamo=False,  # the TorchScript exporter gives a plain, static-shape graph
    )
    proto = onnx.load(str(onnx_path))
    meta = {
        "description": "inspector demo detector: scratch/spot/missing_hole on the sim line",
        "author": "inspector (tools/train_detector.py)",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "imgsz": repr(list(onnx_hw)),
        "names": repr(dict(enumerate(DEFECT_CLASSES))),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(onnx_path))
    set_input(model, (imgsz, imgsz))
    traced = torch.jit.trace(model, torch.zeros(1, 3, imgsz, imgsz))
    traced.save(str(out / "demo_detector.ts"))
    check_exports(model, out, imgsz, onnx_hw)


def check_exports(model: DemoDetector, out: Path, imgsz: int, onnx_hw: tuple[int, int]) -> None:
    """ONNX Runtime and TorchScript must return what the torch model returns."""
    import onnxruntime as ort

    x = torch.rand(1, 3, imgsz, imgsz)
    xr = torch.rand(1, 3, *onnx_hw)
    with torch.no_grad():
        ts_err = np.abs(torch.jit.load(str(out / "demo_detector.ts"))(x) - model(x)).max()
        set_input(model, onnx_hw)
        ref = model(xr).numpy()
        set_input(model, (imgsz, imgsz))
    sess = ort.InferenceSession(str(out / "demo_detector.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = sess.run(None, {"images": xr.numpy()})
    print(
        f"export check: onnx output {list(onnx_out.shape)}, |onnx-torch| max "
        f"{np.abs(onnx_out - ref).max():.2e}, |ts-torch| max {float(ts_err):.2e}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("engines"), help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:0 ...")
    p.add_argument("--parts", type=int, default=12000, help="training parts rendered")
    p.add_argument("--val-parts", type=int, default=600, help="validation parts")
    p.add_argument("--rate", type=float, default=0.6, help="defect rate of training parts")
    p.add_argument("--epochs", type=int, default=29)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=10, help="channel width multiplier")
    p.add_argument("--imgsz", type=int, default=640, help="training (and TorchScript) side")
    p.add_argument(
        "--onnx-hw",
        type=int,
        nargs=2,
        default=(512, 640),
        metavar=("H", "W"),
        help="the ONNX export's input (the sim camera's 5:4 aspect: no letterbox padding)",
    )
    p.add_argument(
        "--reexport",
        type=Path,
        default=None,
        metavar="TS",
        help="skip training: export the weights of this TorchScript file (demo_detector.ts)",
    )
    p.add_argument("--budget-s", type=float, default=0, help="fit training in this time")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between validations")
    p.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 2) - 1))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__} on {device}; {vars(args)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reexport is not None:
        model = DemoDetector(nc=len(DEFECT_CLASSES), imgsz=args.imgsz, width=args.width)
        weights = torch.jit.load(str(args.reexport), map_location="cpu").state_dict()
        model.load_state_dict({k: v for k, v in weights.items() if k not in ("grid", "stride")})
    else:
        model = train(args, device)
        torch.save(model.state_dict(), args.out / "demo_detector_state.pt")
    export(model, args.out, args.imgsz, tuple(args.onnx_hw))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
