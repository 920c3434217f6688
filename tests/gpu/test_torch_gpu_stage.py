"""The torch backend on the pipeline's stream, and the whole device stage (marked ``gpu``).

A small real TorchScript detector (tests/gpu/conftest.py) with YOLOv8's output layout:
host path vs eager torch, CUDA-graph replay on the bound stream vs eager, FP16 close to
FP32, the device candidate filter against numpy, and GpuStage (pinned frame → kernel →
graph → filter → D2H) vs the CPU path, with frames in flight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.config import ModelConfig, PreprocessConfig
from inspector.preprocess.cpu import preprocess
from inspector.types import Frame

pytestmark = pytest.mark.gpu

INPUT_HW = (64, 96)


def _model_cfg(path: Path, *, fp16: bool = False) -> ModelConfig:
    return ModelConfig(
        name="tiny",
        path=path,
        backend="torch",
        input_size=INPUT_HW,
        torch={"fp16": fp16},
        detection={"conf": 0.5},
        class_names=["scratch", "spot", "hole"],
    )


def _backend(path: Path, *, fp16: bool = False, graph: bool = True):  # type: ignore[no-untyped-def]
    from inspector.backends.torch import TorchBackend

    backend = TorchBackend(_model_cfg(path, fp16=fp16), cuda_graph=graph)
    backend.load()
    return backend


def test_host_infer_matches_eager_torch(tiny_detector: Path) -> None:
    import torch

    backend = _backend(tiny_detector)
    assert backend.info.outputs[0].shape == (1, 7, 16 * 24)
    x = np.random.default_rng(11).random((1, 3, *INPUT_HW), dtype=np.float32)
    with torch.no_grad():
        ref = torch.jit.load(str(tiny_detector))(torch.from_numpy(x).cuda()).cpu().numpy()
    (out,) = backend.infer(x)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    backend.close()


def test_graph_replay_on_bound_stream_matches_eager(tiny_detector: Path) -> None:
    import torch

    from inspector.nvidia import driver as cu

    eager, graphed = _backend(tiny_detector, graph=False), _backend(tiny_detector)
    stream = cu.stream_create()
    graphed.bind_stream(stream)
    assert graphed._graph is not None
    rng = np.random.default_rng(12)
    for _ in range(3):  # new data each time: the graph must read the live input binding
        x = rng.random((1, 3, *INPUT_HW), dtype=np.float32)
        np.testing.assert_allclose(graphed.infer(x)[0], eager.infer(x)[0], rtol=1e-4, atol=1e-4)
    torch.cuda.synchronize()
    cu.stream_destroy(stream)


def test_fp16_is_close_to_fp32(tiny_detector: Path) -> None:
    x = np.random.default_rng(13).random((1, 3, *INPUT_HW), dtype=np.float32)
    full, half = _backend(tiny_detector), _backend(tiny_detector, fp16=True)
    assert half.input_fp16 and not full.input_fp16
    np.testing.assert_allclose(half.infer(x)[0], full.infer(x)[0], rtol=1e-2, atol=0.1)


@pytest.mark.parametrize("fmt", ["Mono8", "BayerRG8", "BGR8"])
def test_gpu_stage_matches_cpu_path(tiny_detector: Path, fmt: str) -> None:
    """Two frames in flight through the device stage; each equals CPU preprocess +
    the same model on a host tensor, and the postprocessed findings agree."""
    from inspector.gpu.stage import GpuStage
    from inspector.models import build_postprocessor

    cfg = _model_cfg(tiny_detector)
    backend = _backend(tiny_detector)
    reference = _backend(tiny_detector, graph=False)
    stage = GpuStage(cfg, backend, frames_in_flight=2, candidate_cap=4096)
    post = build_postprocessor(cfg, backend.info)
    assert reference.info.outputs == backend.info.outputs
    rng = np.random.default_rng(14)
    try:
        shape = (203, 301, 3) if fmt == "BGR8" else (203, 301)
        frames = [Frame(rng.integers(0, 256, shape, dtype=np.uint8), fmt, i, 0) for i in range(4)]
        for a, b in zip(frames[::2], frames[1::2], strict=True):
            tickets = [stage.submit(a), stage.submit(b)]
            for frame, ticket in zip((a, b), tickets, strict=True):
                outputs, geo, stage_ns = stage.collect(ticket)
                tensor, geo_ref = preprocess(frame.image, fmt, INPUT_HW, PreprocessConfig())  # type: ignore[arg-type]
                (full,) = reference.infer(tensor)
                assert geo == geo_ref
                _assert_filtered(outputs[0][0], full[0], floor=cfg.detection.conf)
                post(outputs, geo)  # the host postprocessor takes the cut layout as is
                assert {"h2d", "preprocess", "infer", "d2h", "gpu_wait"} <= set(stage_ns)
                assert stage_ns["preprocess"] > 0 and stage_ns["infer"] > 0
    finally:
        stage.close()


def _assert_filtered(got: np.ndarray, full: np.ndarray, floor: float) -> None:
    """``got`` [7, K] holds the columns of ``full`` [7, N] whose best score ≥ floor.

    Inputs differ by up to 1/255 between the GPU and CPU preprocessing, so candidates
    near the floor may go either way, and values are compared with a tolerance.
    """
    scores, ref_scores = got[4:].max(0), full[4:].max(0)
    assert np.all(scores >= floor)
    near = int(np.sum(np.abs(ref_scores - floor) < 0.02))
    assert abs(got.shape[1] - int(np.sum(ref_scores >= floor))) <= near
    for j in range(got.shape[1]):
        dist = np.abs(full - got[:, j : j + 1]).max(0)
        assert dist.min() < 2.0, f"kept column {j} matches no candidate of the full output"


@pytest.mark.parametrize("half", [False, True])
def test_candidate_filter_keeps_exactly_the_columns_above_the_floor(half: bool) -> None:
    import torch

    from inspector.gpu.compact import CandidateFilter
    from inspector.nvidia import driver as cu

    rng = np.random.default_rng(15)
    raw = rng.random((1, 7, 8400), dtype=np.float32)
    raw[0, 0] = np.arange(8400)  # a unique key per candidate (exact in fp16 up to 2048 only)
    dev = torch.from_numpy(raw).cuda()
    if half:
        dev, raw = dev.half(), raw.astype(np.float16).astype(np.float32)
        raw[0, 0] = dev[0, 0].float().cpu().numpy()
    stream = cu.stream_create()
    flt = CandidateFilter(7, 8400, 0.9, 8400, dev.device)
    try:
        torch.cuda.synchronize()
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            flt.run(dev, stream)
        cu.stream_sync(stream)
        count = int(flt.counts[0].cpu()[0])
        got = flt.outs[0].cpu().numpy()[0, :, :count]
        want = raw[0][:, raw[0, 4:].max(0) >= 0.9]
        assert count == want.shape[1] > 0
        got = got[:, np.lexsort(got[::-1])]
        want = want[:, np.lexsort(want[::-1])]
        np.testing.assert_array_equal(got, want)
    finally:
        flt.close()
        cu.stream_destroy(stream)


def test_use_gpu_stage_runs_inspect_part(tiny_detector: Path) -> None:
    """The wiring helper: a LoadedModel switched to the device stage gives a verdict
    through inspect.inspect_part (no error), with the device stage times."""
    from inspector.config import RecipeConfig
    from inspector.gpu.stage import use_gpu_stage
    from inspector.inspect import LoadedModel, LoadedRecipe, inspect_part
    from inspector.models import build_postprocessor

    cfg = _model_cfg(tiny_detector)
    backend = _backend(tiny_detector)
    model = LoadedModel(cfg, backend, build_postprocessor(cfg, backend.info))
    recipe = LoadedRecipe(RecipeConfig(id=1, name="t", models=[cfg]), [model])
    stage = use_gpu_stage(model)
    try:
        image = np.random.default_rng(16).integers(0, 256, (240, 320), dtype=np.uint8)
        verdict, stage_ns = inspect_part(Frame(image, "Mono8", 1, 0), recipe)
        assert verdict.reason.value != "error", verdict.detail
        assert {"h2d", "preprocess", "infer", "d2h", "postprocess", "decide"} <= set(stage_ns)
    finally:
        stage.close()
