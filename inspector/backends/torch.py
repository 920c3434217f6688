"""PyTorch backend (optional extra ``torch``): a TorchScript or ``torch.export`` model.

Two ways in (step 4 of the flow):

- ``infer(tensor)``: the host path of every backend (numpy in, numpy out). Runs on CPU
  when no GPU is present, which is what makes it testable anywhere.
- the device path used by ``gpu/stage.py``: ``bind_stream(handle)`` puts the model on the
  pipeline's CUDA stream (``torch.cuda.ExternalStream``); the fused preprocessing kernel
  writes ``input_ptr`` directly; ``run_on_stream()`` enqueues the model and returns device
  tensors without synchronising. After ``bind_stream`` the forward pass is captured once
  into a CUDA graph (``cuda_graph=True``) and replayed per part: one launch instead of a
  few hundred, which is most of a small detector's latency.

FP16 (``model.torch.fp16``) converts the weights and the input binding to half; outputs are
returned as float32. torch is imported in ``load()`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.backends.base import Backend
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
        self._stream: Any = None
        self._graph: Any = None
        self._graph_out: list[Any] = []
        self._epilogue: Callable[[list[Any]], list[Any]] | None = None

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
            src = torch.from_numpy(np.ascontiguousarray(tensor))
            if self._stream is not None:
                with torch.cuda.stream(self._stream):
                    self._input.copy_(src)
                    outs = self.run_on_stream()
                    host = [o.float().cpu() for o in outs]
            else:
                self._input.copy_(src)
                host = [o.float().cpu() for o in self._forward()]
        except RuntimeError as exc:
            raise BackendError(f"torch inference failed: {exc}") from exc
        return [h.numpy() for h in host]

    # -------------------------------------------------------------- device path
    @property
    def input_ptr(self) -> int:
        """Device address of the input binding the preprocessing kernel writes."""
        return int(self._input.data_ptr())

    @property
    def input_fp16(self) -> bool:
        return bool(self.fp16)

    @property
    def stream(self) -> Any:
        """The bound ``torch.cuda.ExternalStream`` (None before ``bind_stream``)."""
        return self._stream

    def bind_stream(
        self, stream: int, epilogue: Callable[[list[Any]], list[Any]] | None = None
    ) -> None:
        """Run on the pipeline's CUDA stream from now on; capture the CUDA graph there.

        ``epilogue`` (device tensors → device tensors, e.g. the detector's top-K cut) runs
        after the model on the stream and is captured into the same graph: one launch
        per part for model + reduction.
        """
        torch = self._torch
        if self.device.type != "cuda":
            raise BackendError("bind_stream needs the model on a CUDA device")
        self._stream = torch.cuda.ExternalStream(stream, device=self.device)
        self._epilogue = epilogue
        self._graph, self._graph_out = None, []
        if self._cuda_graph:
            self._capture()

    def _capture(self) -> None:
        torch = self._torch
        # Warm up on the stream first: lazy init, cuDNN autotune and the TorchScript
        # profiling runs must not happen inside the capture.
        with torch.cuda.stream(self._stream):
            for _ in range(3):
                self._forward_all()
        self._stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self._stream):
                out = self._forward_all()
        except RuntimeError as exc:
            raise BackendError(f"CUDA graph capture failed: {exc}") from exc
        self._graph = graph
        self._graph_out = out

    def _forward_all(self) -> list[Any]:
        """Model, then the epilogue if any (what the graph captures)."""
        with self._torch.inference_mode():
            outs = self._forward()
            return self._epilogue(outs) if self._epilogue is not None else outs

    def run_on_stream(self) -> list[Any]:
        """Enqueue the model on the bound stream; return device tensors (no sync).

        With a CUDA graph the returned tensors are the graph's static outputs: copy them
        (or reduce them) on the same stream before the next call.
        """
        torch = self._torch
        with torch.cuda.stream(self._stream):
            if self._graph is not None:
                self._graph.replay()
                return self._graph_out
            return self._forward_all()

    def warmup(self, runs: int = 3) -> None:
        """Run the current input a few times so the first part pays no lazy init."""
        for _ in range(runs):
            if self._stream is not None:
                self.run_on_stream()
                self._stream.synchronize()
            else:
                self._forward()

    def close(self) -> None:
        self._graph, self._graph_out = None, []
        self._module = None
        self._input = None
