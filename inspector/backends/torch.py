"""PyTorch backend (optional extra ``torch``): a TorchScript or ``torch.export`` model.

Two ways in (step 4 of the flow):

- ``infer(tensor)``: the host path of every backend (numpy in, numpy out). Runs on CPU
  when no GPU is present, which is what makes it testable anywhere.
- the device path (``device_model()``, protocol in ``backends/device.py``) used by the
  device runner: one lane per CUDA stream, each with its own input tensor that the
  fused preprocessing kernel writes directly; the runner captures the model together
  with its neighbours into one CUDA graph per lane (``cuda_graph=True``) and replays it
  per part: one launch instead of a few hundred, most of a small detector's latency.

FP16 (``model.torch.fp16``) converts the weights and the input binding to half; the host
path returns float32. torch is imported in ``load()`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
from inspector.backends.device import DeviceTensor
from inspector.config import ModelConfig
from inspector.errors import BackendError
from inspector.model_info import ModelInfo, TensorSpec

_DEFAULT_HW = (640, 640)


class TorchBackend(Backend):
    """Runs a TorchScript (``.pt``/``.ts``/``.torchscript``) or exported (``.pt2``) model."""

    name = "torch"

    def __init__(
        self, model: ModelConfig, *, device: str | None = None, cuda_graph: bool | None = None
    ) -> None:
        super().__init__(model)
        self._device_name = device
        self._cuda_graph = model.engine.cuda_graph if cuda_graph is None else cuda_graph
        self._torch: Any = None
        self._module: Any = None
        self._input: Any = None

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load the model on the GPU if there is one (else CPU) and probe its outputs."""
        try:
            import torch
        except ImportError as exc:
            raise BackendError(f"backend 'torch' needs PyTorch: {exc}") from exc
        self._torch = torch
        dev = self._device_name or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        path = Path(self.model.path)
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        try:
            self._module = self._load_module(path)
        except Exception as exc:  # torch raises many types; report them as one
            raise BackendError(f"cannot load {path}: {exc}") from exc
        self.fp16 = bool(self.model.torch.fp16 and self.device.type == "cuda")
        if self.fp16:
            self._module = self._module.half()
        h, w = self.model.input_size or _DEFAULT_HW
        dtype = torch.float16 if self.fp16 else torch.float32
        self._input = torch.zeros((1, 3, h, w), dtype=dtype, device=self.device)
        outs = self._forward()
        self._info = ModelInfo(
            inputs=(TensorSpec("images", (1, 3, h, w), "float16" if self.fp16 else "float32"),),
            outputs=tuple(
                TensorSpec(f"output{i}", tuple(int(d) for d in o.shape)) for i, o in enumerate(outs)
            ),
            metadata={"device": str(self.device)},
        )

    def _load_module(self, path: Path) -> Any:
        torch = self._torch
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module().to(self.device)
        module = torch.jit.load(str(path), map_location=self.device)
        return module.eval()

    def _forward(self) -> list[Any]:
        torch = self._torch
        with torch.inference_mode():
            out = self._module(self._input)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    # ---------------------------------------------------------------- host path
    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run one host ``[1, 3, H, W]`` float32 tensor; return float32 numpy outputs."""
        torch = self._torch
        if self._module is None:
            raise BackendError("torch backend used before load()")
        if tuple(tensor.shape) != tuple(self._input.shape):
            raise BackendError(f"input {tensor.shape} != model input {tuple(self._input.shape)}")
        try:
            self._input.copy_(torch.from_numpy(np.ascontiguousarray(tensor)))
            host = [o.float().cpu() for o in self._forward()]
        except RuntimeError as exc:
            raise BackendError(f"torch inference failed: {exc}") from exc
        return [h.numpy() for h in host]

    def warmup(self, runs: int = 3) -> None:
        """Run the current input a few times so the first part pays no lazy init."""
        for _ in range(runs):
            self._forward()

    # -------------------------------------------------------------- device path
    def device_model(self) -> TorchDeviceModel:
        """Lanes on CUDA streams (``backends/device.py``); needs the model on a GPU."""
        if self._module is None:
            raise BackendError("torch backend used before load()")
        if self.device.type != "cuda":
            raise BackendError(f"model {self.model.name!r}: the device path needs a CUDA GPU")
        return TorchDeviceModel(self)

    def close(self) -> None:
        self._module = None
        self._input = None


class TorchDeviceModel:
    """The torch backend's ``DeviceModel``: one input tensor and one graph per lane."""

    def __init__(self, backend: TorchBackend) -> None:
        self.backend = backend

    def open_lane(self, stream: int) -> TorchLane:
        return TorchLane(self.backend, stream)


class TorchLane:
    """The model on one CUDA stream (``torch.cuda.ExternalStream``), with its own input.

    ``enqueue`` runs the module eagerly on the stream; ``capture`` records a body that
    calls it into a ``torch.cuda.CUDAGraph`` (its own memory pool, so lanes never share
    activations) and replays it there: one launch instead of a few hundred kernels.
    """

    def __init__(self, backend: TorchBackend, stream: int) -> None:
        torch = backend._torch
        self._torch = torch
        self._backend = backend
        self.stream = stream
        self._ext = torch.cuda.ExternalStream(stream, device=backend.device)
        self._input = torch.zeros_like(backend._input)
        self.input = DeviceTensor(
            int(self._input.data_ptr()), tuple(self._input.shape), _np_dtype(self._input)
        )
        self._outputs: list[Any] = []  # keeps the last outputs alive (stream order)
        # Warm up on this stream: lazy init, cuDNN/cuBLAS workspaces and the TorchScript
        # profiling runs must not happen inside a capture or on the first part.
        for _ in range(max(3, backend.model.engine.warmup_runs)):
            self.enqueue()
        self._ext.synchronize()

    def enqueue(self) -> list[DeviceTensor]:
        torch = self._torch
        try:
            with torch.cuda.stream(self._ext), torch.inference_mode():
                out = self._backend._module(self._input)
                outs = [o.contiguous() for o in (out if isinstance(out, (list, tuple)) else [out])]
        except RuntimeError as exc:  # torch reports CUDA failures as RuntimeError
            from inspector.nvidia import driver

            driver.count_failure()
            raise BackendError(f"torch on the lane's stream failed: {exc}") from exc
        self._outputs = outs
        return [DeviceTensor(int(o.data_ptr()), tuple(o.shape), _np_dtype(o)) for o in outs]

    def capture(self, body: Callable[[], None]) -> TorchGraph:
        if not self._backend._cuda_graph:
            raise BackendError("engine.cuda_graph is off")
        torch = self._torch
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self._ext):
                body()
        except RuntimeError as exc:
            raise BackendError(f"CUDA graph capture failed: {exc}") from exc
        # The outputs captured in the graph live in its pool; keep them referenced.
        return TorchGraph(graph, self._ext, list(self._outputs))

    def close(self) -> None:
        self._outputs = []


class TorchGraph:
    """A captured torch CUDA graph, replayed on its lane's stream."""

    def __init__(self, graph: Any, stream: Any, keep: list[Any]) -> None:
        self._graph, self._stream, self._keep = graph, stream, keep
        import torch

        self._torch = torch

    def launch(self) -> None:
        try:
            with self._torch.cuda.stream(self._stream):
                self._graph.replay()
        except RuntimeError as exc:
            from inspector.nvidia import driver

            driver.count_failure()
            raise BackendError(f"CUDA graph replay failed: {exc}") from exc

    def close(self) -> None:
        self._graph, self._keep = None, []


def _np_dtype(tensor: Any) -> str:
    """numpy name of a torch tensor's dtype (``torch.float16`` → ``"float16"``)."""
    return str(tensor.dtype).removeprefix("torch.")
