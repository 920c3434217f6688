"""Check tools/yolov8n_net.py against Ultralytics' YOLOv8n on the CPU (a tool, not a test).

Run with an environment that has Ultralytics (e.g. /work/venvs/ml):

    python tools/check_yolov8n_net.py

Loads the weights of ``YOLO("yolov8n.yaml")`` (randomly initialised, seeded) into
``YOLOv8n`` name for name and prints the largest output difference on a random input
(0.0 when the layers match), the parameter counts, and the top class score of a fresh
``YOLOv8n`` (Ultralytics' head bias initialisation: ~1e-4).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ultralytics import YOLO
from yolov8n_net import YOLOv8n

torch.manual_seed(0)
ul = YOLO("yolov8n.yaml").model.eval()
mine = YOLOv8n(80).eval()
print("params: ultralytics", sum(p.numel() for p in ul.parameters()),
      "yolov8n_net", sum(p.numel() for p in mine.parameters()))  # fmt: skip
keys = set(ul.state_dict()) ^ set(mine.state_dict())
print("state_dict names that differ (DFL's fixed weights only):", sorted(keys))
mine.load_state_dict(ul.state_dict(), strict=False)
x = torch.rand(1, 3, 640, 640)
with torch.no_grad():
    a, b = ul(x), mine(x)
    a = a[0] if isinstance(a, (list, tuple)) else a
    print("outputs", tuple(a.shape), tuple(b.shape), "max |difference|", float((a - b).abs().max()))
    print("fresh YOLOv8n top class score", float(YOLOv8n(80).eval()(x)[:, 4:].max()))
