"""``import inspector``, the TensorRT backend module, the device path's modules and the
CPU daemon never import TensorRT, CUDA or torch (checked in fresh interpreters, via
``sys.modules``): CUDA is imported only when a model runs on the device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.common import REPO
from tests.support.onnx_models import make_detector_onnx

HEAVY = ("tensorrt", "cuda", "torch")

CHECK = """
import json, sys
{body}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
with open({out!r}, "w") as f:
    json.dump({{"heavy": heavy, "rc": rc}}, f)
"""


def run_and_list_heavy(tmp_path: Path, body: str) -> dict[str, object]:
    out = tmp_path / "modules.json"
    script = CHECK.format(body=body, heavy=HEAVY, out=str(out))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(out.read_text())
    return result


def test_package_and_engine_modules_import_nothing_heavy(tmp_path: Path) -> None:
    body = """
import inspector
import inspector.backends.tensorrt, inspector.engine_cli, inspector.engine.build
import inspector.engine.trt_api, inspector.engine.golden
import inspector.nvidia.driver, inspector.gpu.runner, inspector.gpu.detect, inspector.gpu.pinned
import inspector.preprocess.cuda, inspector.backends.device, inspector.backends.torch
import inspector.backends.onnxruntime_cuda, inspector.inflight
from inspector.backends import backend_class
assert backend_class("tensorrt").__name__ == "TensorRTBackend"
from inspector.cli import build_parser
build_parser()
rc = 0
"""
    assert run_and_list_heavy(tmp_path, body) == {"heavy": [], "rc": 0}


def test_cpu_daemon_runs_parts_without_heavy_imports(tmp_path: Path) -> None:
    model = make_detector_onnx(tmp_path / "m.onnx", [(30, 30, 8, 8, 2, 0.8)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
trigger: {{rate_hz: 50}}
camera: {{type: sim, sim: {{width: 320, height: 256, pool_size: 4}}}}
recipes: [{{id: 1, name: t, models: [{{path: "{model}"}}]}}]
metrics: {{enabled: false}}
logging: {{format: json, per_part: false}}
"""
    )
    body = f"""
from inspector.cli import main
rc = main(["run", "--config", {str(cfg)!r}, "--parts", "20"])
"""
    assert run_and_list_heavy(tmp_path, body) == {"heavy": [], "rc": 0}
