"""TensorRT engine tooling: build, cache, verify, inspect (used by backends/tensorrt.py).

Only ``trt_api.py`` calls TensorRT (``bindings.py`` reads engines through a protocol),
and CUDA goes through the one CUDA layer ``nvidia/driver.py``, each imported inside
functions. Everything else here is pure Python
and tested without a GPU: manifests, the cache decision, error diagnosis, tensor
bindings, the golden check, the command line.
"""
