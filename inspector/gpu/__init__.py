"""The device path of the flow (a leaf: only the runner registry and the app reach it).

Nothing here is imported by ``import inspector`` or by the CPU daemon: ``inspect.RUNNERS``
names ``runner.py`` for ``preprocess.device: cuda`` and imports it only then. The CUDA
driver and NVRTC layers it stands on are in ``inspector/nvidia/``.

- ``runner.py``: ``DeviceRunner``, a model's part on the GPU: lanes (one model instance
  and stream each), one CUDA graph per lane, submit / collect, keep-alive.
- ``detect.py``: the detector candidate filter and class-aware NMS kernels (their source
  next to them), run on the model's outputs inside the lane's graph.
- ``pinned.py``: the pinned frame pool cameras write into.
"""
