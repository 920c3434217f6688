"""GPU helpers for the CUDA path (preprocess on device, backends on one stream).

Nothing here is imported by ``import inspector`` or by the CPU daemon: ``preprocess/cuda.py``
and ``backends/torch.py`` import these modules only when ``preprocess.device: cuda`` or
``backend: torch`` is configured.

- ``driver.py``: a thin layer over cuda-python's driver API (12.x and 13.x import paths);
  every failing call raises ``BackendError`` carrying the CUDA error name.
- ``nvrtc.py``: compile CUDA C++ to a cubin, cached per GPU architecture.
- ``stage.py``: the device stage of the flow: pinned frame → fused kernel → model on the
  same stream → outputs back on the host.
"""
