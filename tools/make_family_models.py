#!/usr/bin/env python3
"""Build the small, real ONNX test models of the segmentation, anomaly and classification
families (tests/data/models/*.onnx).

Each model is a fixed function of the input written with ``onnx.helper`` (no training, no
weights to download), so tests know exactly what it must find. Inputs are ``images``
``[1, 3, H, W]`` float32 in 0..1 (the default preprocess: mean 0, std 1); ``gray`` below
is the channel mean.

* ``seg_dark.onnx`` — binary segmentation at half resolution: ``mask`` ``[1,1,32,32]`` =
  sigmoid(40·(0.3 − avgpool2(gray))), probabilities; names ``{0: 'dark_spot'}``.
* ``seg_multi.onnx`` — 3-class segmentation at full resolution: ``logits`` ``[1,3,64,64]``
  = (0, 40·(0.25 − gray), 40·(gray − 0.75)); names background, dark, bright.
* ``anomaly_patchcore.onnx`` — anomalib-like, normalised units: ``pred_score`` ``[1]``,
  ``pred_label`` ``[1]`` (bool), ``anomaly_map`` ``[1,1,64,64]`` = avgpool3(2·|gray − 0.5|),
  score = max of the map. A mid-grey part is normal.
* ``anomaly_map_raw.onnx`` — map only, raw units, half resolution: ``output``
  ``[1,1,32,32]`` = avgpool2(20·|gray − 0.5|) (0..10), with anomalib v1's
  ``anomaly_map_raw.metadata.json`` beside it (thresholds 4, min 0, max 10).
* ``cls_brightness.onnx`` — classifier, logits ``[1,3]`` for good, dark, bright:
  (0, 40·(0.3 − mean), 40·(mean − 0.7)).
* ``cls_brightness_probs.onnx`` — the same followed by Softmax, ``probs`` ``[1,3]``.

Usage: ``python tools/make_family_models.py [--out tests/data/models]``. The output is
byte-for-byte reproducible; tests/integration/test_family_models.py checks the committed
files against it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13  # old enough for the ONNX Runtime / TensorRT 10.3 of JetPack 6
IR_VERSION = 7
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "models"


RAW_METADATA = {"image_threshold": 4.0, "pixel_threshold": 4.0, "min": 0.0, "max": 10.0}


def _const(name: str, value: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _model(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    hw: tuple[int, int],
    outputs: list[onnx.ValueInfoProto],
    names: str | None,
    doc: str,
) -> onnx.ModelProto:
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *hw])
    graph = helper.make_graph(nodes, "family_test_model", [image], outputs, inits, doc_string=doc)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="inspector-tools-make_family_models",
        producer_version="1",
        ir_version=IR_VERSION,
    )
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model, full_check=True)
    return model


def _gray_affine(
    out: str, scale: float, offset: float
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """1×1 Conv computing ``scale·gray + offset`` (gray = mean of the 3 channels)."""
    w = np.full((1, 3, 1, 1), scale / 3.0, np.float32)
    node = helper.make_node("Conv", ["images", f"{out}_w", f"{out}_b"], [out])
    return node, [_const(f"{out}_w", w), _const(f"{out}_b", [offset])]


def seg_dark() -> onnx.ModelProto:
    conv, inits = _gray_affine("logit_full", -40.0, 12.0)
    nodes = [
        conv,
        helper.make_node(
            "AveragePool", ["logit_full"], ["logit"], kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Sigmoid", ["logit"], ["mask"]),
    ]
    out = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 32, 32])
    return _model(nodes, inits, (64, 64), [out], "{0: 'dark_spot'}", "dark pixels, half res")


def seg_multi() -> onnx.ModelProto:
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[1] = -40.0 / 3.0
    w[2] = 40.0 / 3.0
    inits = [_const("w", w), _const("b", [0.0, 10.0, -30.0])]
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["logits"])]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 64, 64])
    names = "{0: 'background', 1: 'dark', 2: 'bright'}"
    return _model(nodes, inits, (64, 64), [out], names, "dark/bright logits, full res")


def anomaly_patchcore() -> onnx.ModelProto:
    conv, inits = _gray_affine("centred", 2.0, -1.0)  # 2·gray − 1 = 2·(gray − 0.5)
    inits += [
        numpy_helper.from_array(np.asarray([1], np.int64), "score_shape"),
        _const("label_threshold", [0.5]),
    ]
    pool = helper.make_node(
        "AveragePool", ["dev"], ["anomaly_map"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
    )
    nodes = [
        conv,
        helper.make_node("Abs", ["centred"], ["dev"]),
        pool,
        helper.make_node("ReduceMax", ["anomaly_map"], ["score_scalar"], keepdims=0),
        helper.make_node("Reshape", ["score_scalar", "score_shape"], ["pred_score"]),
        helper.make_node("Greater", ["pred_score", "label_threshold"], ["pred_label"]),
    ]
    outs = [
        helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("pred_label", TensorProto.BOOL, [1]),
        helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, 64, 64]),
    ]
    return _model(nodes, inits, (64, 64), outs, None, "deviation from mid-grey, normalised")


def anomaly_map_raw() -> onnx.ModelProto:
    conv, inits = _gray_affine("centred", 20.0, -10.0)  # 20·(gray − 0.5)
    nodes = [
        conv,
        helper.make_node("Abs", ["centred"], ["dev"]),
        helper.make_node("AveragePool", ["dev"], ["output"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 32, 32])
    return _model(nodes, inits, (64, 64), [out], None, "deviation from mid-grey, raw, map only")


def _cls_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    # Gemm with transB: logits = pooled · Wᵀ + b, pooled = per-channel means.
    w = np.zeros((3, 3), np.float32)
    w[1] = -40.0 / 3.0
    w[2] = 40.0 / 3.0
    inits = [_const("fc_w", w), _const("fc_b", [0.0, 12.0, -28.0])]
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled4"]),
        helper.make_node("Flatten", ["pooled4"], ["pooled"], axis=1),
        helper.make_node("Gemm", ["pooled", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    return nodes, inits


def cls_brightness() -> onnx.ModelProto:
    nodes, inits = _cls_nodes()
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    names = "{0: 'good', 1: 'dark', 2: 'bright'}"
    return _model(nodes, inits, (32, 32), [out], names, "brightness classes, logits")


def cls_brightness_probs() -> onnx.ModelProto:
    nodes, inits = _cls_nodes()
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])
    names = "['good', 'dark', 'bright']"
    return _model(nodes, inits, (32, 32), [out], names, "brightness classes, probabilities")


BUILDERS = {
    "seg_dark.onnx": seg_dark,
    "seg_multi.onnx": seg_multi,
    "anomaly_patchcore.onnx": anomaly_patchcore,
    "anomaly_map_raw.onnx": anomaly_map_raw,
    "cls_brightness.onnx": cls_brightness,
    "cls_brightness_probs.onnx": cls_brightness_probs,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, builder in BUILDERS.items():
        path = args.out / name
        path.write_bytes(builder().SerializeToString(deterministic=True))
        print(f"{path} ({path.stat().st_size} bytes)")
    # anomalib v1 style: the raw map's thresholds and range, beside the model.
    meta = args.out / "anomaly_map_raw.metadata.json"
    meta.write_text(json.dumps(RAW_METADATA, indent=1) + "\n")
    print(meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
