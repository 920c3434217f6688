"""TensorRT engine tooling: build, cache, verify, inspect (used by backends/tensorrt.py).

Only ``trt_build.py`` and ``backends/tensorrt.py`` touch TensorRT, and ``cudart.py``
touches CUDA, each importing it inside functions. Everything else here is pure Python
and tested without a GPU: manifests, the cache decision, error diagnosis, tensor
bindings, the golden check, the command line.
"""
