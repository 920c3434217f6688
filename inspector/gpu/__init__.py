"""The device path of the flow (a leaf: only the app's wiring imports it).

Nothing here is imported by ``import inspector`` or by the CPU daemon; the app imports
``stage.py`` only when ``preprocess.device: cuda`` is configured. The CUDA driver and
NVRTC layers it stands on are in ``inspector/nvidia/``.

- ``stage.py``: the device path of the flow: pinned frame → fused kernel → model on the
  same stream → outputs back on the host.
- ``compact.py``: the detector candidate filter (its kernel next to it) run on the
  model's outputs before the copy back.
"""
