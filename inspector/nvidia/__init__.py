"""Thin layers over NVIDIA's CUDA driver API and NVRTC, below everything that runs on a GPU.

``preprocess/cuda.py``, the GPU backends and the device path (``gpu/``) import these
modules only when a CUDA path is configured; nothing here is imported by ``import
inspector`` or by the CPU daemon.

- ``driver.py``: cuda-python's driver API (12.x and 13.x import paths); every failing
  call raises ``BackendError`` carrying the CUDA error name.
- ``nvrtc.py``: compile CUDA C++ to a cubin, cached per GPU architecture.
"""
