"""Real exports for the family tests (tests/data/exports/), made by the tools engineers use.

    nice -n 10 /work/venvs/ml/bin/python tools/make_export_fixtures.py --out tests/data/exports

Offline tool: needs ultralytics, torch, torchvision, anomalib (never the daemon or CI).
Nothing is downloaded: every network is built from its YAML or constructor with random
initialisation, reduced in width so each file stays far below 5 MB, and the Ultralytics
ones are trained for a few epochs on simulated parts (``inspector.sim.render``) so their
scores spread. Each model is exported by its own tool's exporter, as a user would:

* ``yolo26_e2e.onnx``: YOLO26 detect, ``model.export(format="onnx", nms=False)`` →
  end-to-end ``[1,300,6]`` (the NMS-free head; without ``nms=False`` YOLO26 exports the
  plain ``[1,4+nc,N]`` head);
* ``yolov8_nms.onnx``: YOLOv8 detect exported with ``nms=True`` → ``[1,300,6]``;
* ``yolov8_seg.onnx``: YOLOv8-seg → ``[1,4+nc+32,N]`` + prototypes ``[1,32,h,w]``;
* ``yolo26_seg.onnx``: YOLO26-seg with ``nms=False`` → end-to-end ``[1,300,6+32]`` + prototypes;
* ``yolo26_sem.onnx``: YOLO26 semantic → ``uint8 [1,H,W]`` class map (untrained);
* ``yolo26_pose.onnx``: YOLO26 pose (untrained): the daemon must refuse it;
* ``yolo11_cls.onnx``: YOLO11 classify, ``good``/``defect`` → ``[1,2]`` probabilities;
* ``tv_lraspp.onnx``: torchvision LR-ASPP head on a reduced MobileNetV3 → logits;
* ``anomalib_patchcore.onnx``: anomalib 2.x PatchCore (ResNet-18 ``layer1``, random
  weights) fitted on good parts by ``Engine.fit`` and exported by ``to_onnx`` with
  static shapes (``pred_score``, ``pred_label``, ``anomaly_map``, ``pred_mask``);
  ``anomalib_patchcore_b2.onnx`` is the default ``to_onnx`` export, whose batch came
  out static at 2: the daemon must refuse it.

``part.png`` is one simulated part already letterboxed to the 320×320 model input, so a
test frame maps 1:1 onto the model input. ``expected.json`` holds what Ultralytics' own
runtime predicts on it with each ONNX file (boxes in input pixels, classes, scores and
mask areas) and what anomalib's PyTorch model scores; the tests compare the daemon's
parsing with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from inspector.config import PreprocessConfig, SimCameraConfig, SimDefectConfig
from inspector.preprocess.cpu import preprocess
from inspector.sim.render import DEFECT_CLASSES, render_part

IMGSZ = 320
SEED = 3000  # fixture training parts; the held-out seeds of the docs are 9000 and up
PART_SEED, PART_INDEX = 3100, 7  # the committed test part (has a defect)
AL_HW = 64  # anomalib fixture input (PatchCore's coreset search is slow on a CPU)
CONF = 0.001  # Ultralytics' val floor: the briefly trained fixtures still predict
# Reduced width: [depth, width, max_channels] for scale "n".
TINY = {"n": [0.33, 0.125, 256]}


PREDICT_TASKS = {
    "yolo26_e2e.onnx": "detect",
    "yolov8_nms.onnx": "detect",
    "yolov8_seg.onnx": "segment",
    "yolo26_seg.onnx": "segment",
    "yolo11_cls.onnx": "classify",
}


def _letterboxed(seed: int, index: int, rate: float) -> tuple[np.ndarray, list[Any]]:
    cfg = SimCameraConfig(seed=seed, defects=SimDefectConfig(rate=rate, max_per_part=2))
    image, labels = render_part(seed, index, cfg)
    tensor, geo = preprocess(image, "Mono8", (IMGSZ, IMGSZ), PreprocessConfig())
    grey = np.rint(tensor[0, 0] * 255.0).astype(np.uint8)
    boxes = []
    for lb in labels:
        x1, y1, x2, y2 = lb.box
        boxes.append(
            (
                DEFECT_CLASSES.index(lb.class_name),
                x1 * geo.scale_x + geo.pad_x,
                y1 * geo.scale_y + geo.pad_y,
                x2 * geo.scale_x + geo.pad_x,
                y2 * geo.scale_y + geo.pad_y,
            )
        )
    return grey, boxes


def write_yolo_dataset(root: Path, count: int) -> Path:
    """Ultralytics dataset layout: images/{train,val}, labels/{train,val} (boxes and
    rectangle polygons), plus data.yaml."""
    for split, start, n in (("train", 0, count), ("val", 10_000, max(8, count // 8))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "seglabels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            grey, boxes = _letterboxed(SEED, i, 0.7)
            cv2.imwrite(str(root / "images" / split / f"p{i:05d}.png"), grey)
            det, seg = [], []
            for c, x1, y1, x2, y2 in boxes:
                cx, cy = (x1 + x2) / 2 / IMGSZ, (y1 + y2) / 2 / IMGSZ
                w, h = (x2 - x1) / IMGSZ, (y2 - y1) / IMGSZ
                det.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
                a, b, d, e = x1 / IMGSZ, y1 / IMGSZ, x2 / IMGSZ, y2 / IMGSZ
                seg.append(f"{c} {a:.6f} {b:.6f} {d:.6f} {b:.6f} {d:.6f} {e:.6f} {a:.6f} {e:.6f}")
            (root / "labels" / split / f"p{i:05d}.txt").write_text("\n".join(det))
            (root / "seglabels" / split / f"p{i:05d}.txt").write_text("\n".join(seg))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(DEFECT_CLASSES))
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return root / "data.yaml"


def _yaml(base: str, work: Path, **extra: Any) -> str:
    """The packaged model YAML at the reduced scale, written to ``work`` (YOLO() takes a path)."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(base)
    cfg.pop("yaml_file", None)
    cfg["scales"] = TINY
    cfg["scale"] = "n"
    cfg.update(extra)
    path = work / f"tiny-{Path(base).stem}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _train(model: Any, data: Path, epochs: int, work: Path, name: str) -> None:
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=IMGSZ,
        batch=16,
        workers=0,
        device="cpu",
        plots=False,
        val=False,
        amp=False,
        project=str(work / "runs"),
        name=name,
        exist_ok=True,
        verbose=False,
        seed=0,
        deterministic=True,
        mosaic=0.0,
    )


def _export(model: Any, out: Path, name: str, **kw: Any) -> Path:
    path = Path(model.export(format="onnx", imgsz=IMGSZ, opset=17, simplify=False, **kw))
    dst = out / name
    shutil.move(path, dst)
    return dst


def _predict(onnx_path: Path, grey: np.ndarray, task: str) -> dict[str, Any]:
    """Ultralytics' own runtime on the ONNX file, fed the already letterboxed tensor."""
    import torch
    from ultralytics import YOLO

    tensor = torch.from_numpy(np.repeat(grey[None, None].astype(np.float32) / 255.0, 3, 1))
    (res,) = YOLO(str(onnx_path), task=task).predict(
        source=tensor, imgsz=IMGSZ, conf=CONF, iou=0.7, max_det=300, verbose=False
    )
    if task == "classify":
        return {"probs": res.probs.data.tolist()}
    boxes = res.boxes
    out: dict[str, Any] = {
        "boxes": boxes.xyxy.tolist(),
        "scores": boxes.conf.tolist(),
        "classes": [int(c) for c in boxes.cls.tolist()],
    }
    if res.masks is not None:
        out["mask_areas"] = res.masks.data.sum(dim=(1, 2)).tolist()
    return out


def make_ultralytics(out: Path, work: Path, grey: np.ndarray, epochs: int) -> dict[str, Any]:
    from ultralytics import YOLO

    data = write_yolo_dataset(work / "yolo", 96)
    seg_root = work / "yolo_seg"
    if not seg_root.exists():
        shutil.copytree(work / "yolo" / "images", seg_root / "images")
        shutil.copytree(work / "yolo" / "seglabels", seg_root / "labels")
        (seg_root / "data.yaml").write_text(
            (work / "yolo" / "data.yaml").read_text().replace(str(work / "yolo"), str(seg_root))
        )
    expected: dict[str, Any] = {}
    jobs = [
        ("yolo26_e2e.onnx", "yolo26.yaml", data, "detect", {"nms": False}),
        ("yolov8_nms.onnx", "yolov8.yaml", data, "detect", {"nms": True}),
        ("yolov8_seg.onnx", "yolov8-seg.yaml", seg_root / "data.yaml", "segment", {}),
        ("yolo26_seg.onnx", "yolo26-seg.yaml", seg_root / "data.yaml", "segment", {"nms": False}),
    ]
    for name, base, ds, task, kw in jobs:
        model = YOLO(_yaml(base, work, nc=len(DEFECT_CLASSES)), task=task)
        _train(model, ds, epochs, work, name.removesuffix(".onnx"))
        path = _export(model, out, name, **kw)
        expected[name] = _predict(path, grey, task)
        print(name, {k: len(v) for k, v in expected[name].items()}, flush=True)
    # Untrained heads: their layout is what matters.
    sem = YOLO(_yaml("yolo26-sem.yaml", work, nc=3), task="semantic")
    _export(sem, out, "yolo26_sem.onnx")
    pose = YOLO(_yaml("yolo26-pose.yaml", work, nc=1), task="pose")
    _export(pose, out, "yolo26_pose.onnx")
    cls = YOLO(_yaml("yolo11-cls.yaml", work, nc=2), task="classify")
    cls_root = write_cls_dataset(work / "cls", 64)
    cls.train(
        data=str(cls_root), epochs=epochs, imgsz=128, batch=16, workers=0, device="cpu",
        plots=False, val=False, amp=False, project=str(work / "runs"), name="cls",
        exist_ok=True, verbose=False, seed=0,
    )  # fmt: skip
    path = Path(cls.export(format="onnx", imgsz=128, opset=17, simplify=False))
    shutil.move(path, out / "yolo11_cls.onnx")
    small = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
    expected["yolo11_cls.onnx"] = _predict(out / "yolo11_cls.onnx", small, "classify")
    cv2.imwrite(str(out / "part_128.png"), small)
    return expected


def write_cls_dataset(root: Path, count: int) -> Path:
    """ImageFolder layout: {train,val}/{good,defect}/*.png at 128×128."""
    for split, start in (("train", 20_000), ("val", 30_000)):
        for i in range(start, start + (count if split == "train" else 16)):
            grey, boxes = _letterboxed(SEED, i, 0.5)
            small = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
            d = root / split / ("defect" if boxes else "good")
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"p{i:05d}.png"), small)
    return root


def make_torchvision(out: Path) -> None:
    import torch
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3

    torch.manual_seed(0)
    backbone = mobilenet_v3_large(weights=None, width_mult=0.25, dilated=True)
    net = _lraspp_mobilenetv3(backbone, num_classes=3).eval()

    class Out(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)["out"]

    path = out / "tv_lraspp.onnx"
    torch.onnx.export(
        Out().eval(), (torch.zeros(1, 3, 256, 256),), str(path),
        input_names=["images"], output_names=["out"], opset_version=17, dynamo=False,
    )  # fmt: skip
    _set_meta(path, {"names": "{0: 'background', 1: 'scratch', 2: 'spot'}"})


def _set_meta(path: Path, props: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    onnx.helper.set_model_props(m, props)
    onnx.save(m, str(path))


def make_anomalib(out: Path, work: Path) -> dict[str, Any]:
    """PatchCore fitted on good parts (plus a few defective ones for its thresholds)."""
    import torch
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from anomalib.models import Patchcore

    root = work / "anomaly"
    for sub, start, n, rate in (("good", 40_000, 32, 0.0), ("defect", 50_000, 12, 1.0)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            grey, _ = _letterboxed(SEED, i, rate)
            cv2.imwrite(str(root / sub / f"p{i:05d}.png"), cv2.resize(grey, (AL_HW, AL_HW)))
    torch.manual_seed(0)
    dm = Folder(
        name="sim", root=root, normal_dir="good", abnormal_dir="defect",
        train_batch_size=8, eval_batch_size=8, num_workers=0, seed=0,
    )  # fmt: skip
    model = Patchcore(backbone="resnet18", layers=["layer1"], pre_trained=False,
                      coreset_sampling_ratio=0.02, num_neighbors=3, visualizer=False)  # fmt: skip
    engine = Engine(max_epochs=1, accelerator="cpu", devices=1, default_root_dir=str(work / "al"),
                    logger=False)  # fmt: skip
    engine.fit(model=model, datamodule=dm)
    import onnx

    # The default export specialises PatchCore's batch to the example's 2 (a static
    # batch the daemon must refuse); all-static shapes give batch 1. The dynamo exporter
    # keeps weights in model.onnx.data: each is inlined into one file.
    for name, kw in (("anomalib_patchcore_b2.onnx", {}),
                     ("anomalib_patchcore.onnx", {"dynamic_shapes": {"batch": {}}})):  # fmt: skip
        path = model.to_onnx(work / name, input_size=(AL_HW, AL_HW), **kw)
        onnx.save(onnx.load(str(path)), str(out / name))
    small = cv2.resize(cv2.imread(str(out / "part.png"), cv2.IMREAD_GRAYSCALE), (AL_HW, AL_HW))
    cv2.imwrite(str(out / "part_64.png"), small)
    x = torch.from_numpy(np.repeat(small[None, None].astype(np.float32) / 255.0, 3, 1))
    with torch.no_grad():
        pred = model.eval()(x)
    return {
        "pred_score": float(pred.pred_score.reshape(-1)[0]),
        "pred_label": bool(pred.pred_label.reshape(-1)[0]),
        "anomaly_map_max": float(pred.anomaly_map.max()),
        "pred_mask_pixels": int(pred.pred_mask.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("tests/data/exports"))
    p.add_argument("--work", type=Path, default=Path("/tmp/inspector-fixtures"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument(
        "--only", choices=["ultralytics", "torchvision", "anomalib", "predict"], default=None
    )
    args = p.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    grey, boxes = _letterboxed(PART_SEED, PART_INDEX, 1.0)
    cv2.imwrite(str(args.out / "part.png"), grey)
    exp_path = args.out / "expected.json"
    expected: dict[str, Any] = json.loads(exp_path.read_text()) if exp_path.exists() else {}
    expected["part"] = {"seed": PART_SEED, "index": PART_INDEX, "truth": boxes, "conf": CONF}
    if args.only in (None, "ultralytics"):
        expected.update(make_ultralytics(args.out, args.work, grey, args.epochs))
    if args.only == "predict":  # Ultralytics' predictions again, on the files in --out
        for name, task in PREDICT_TASKS.items():
            small = cv2.imread(str(args.out / "part_128.png"), cv2.IMREAD_GRAYSCALE)
            image = small if task == "classify" else grey
            expected[name] = _predict(args.out / name, image, task)
    if args.only in (None, "torchvision"):
        make_torchvision(args.out)
    if args.only in (None, "anomalib"):
        expected["anomalib_patchcore.onnx"] = make_anomalib(args.out, args.work)
    exp_path.write_text(json.dumps(expected, indent=1))
    for f in sorted(args.out.iterdir()):
        print(f"{f.name:28s} {f.stat().st_size / 1e6:7.3f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
