"""Detector outputs finished on the device: candidate filter + class-aware NMS (step 5).

For the YOLO layouts (``[1, 4+nc, N]`` YOLOv8/v11, ``[1, N, 5+nc]`` YOLOv5) two small
NVRTC kernels run on the lane's stream right after the model, inside the part's CUDA
graph, so only the final boxes come back to the host:

1. ``inspector_candidates`` (one thread per candidate) decodes the best class and score
   exactly as ``models/detection.decode`` does (YOLOv5: objectness × class score; the
   first maximum wins a tie), drops candidates below ``detection.conf``, turns cx, cy, w, h
   into x1, y1, x2, y2, and appends the rest with its anchor index to a ``[CAP, 7]``
   buffer with an atomic counter (so in no fixed order). Every value it reads is
   checked: a NaN or inf anywhere in the output is counted, and the host then fails the
   part closed, as ``require_finite`` does on the CPU path.
2. ``inspector_nms`` (one block) sorts the candidates by score, best first, equal scores
   by anchor index (bitonic sort in shared memory): the CPU path's order exactly, so
   tied candidates (a saturated score of 1.0 is common) resolve the same way on both
   paths and from run to run. It then runs the CPU path's greedy class-aware NMS (same
   IoU formula, a box is suppressed when IoU > ``detection.iou``, at most
   ``detection.max_det`` kept).

One D2H copy then brings a small header (kept, candidates, non-finite count) and the
kept rows. More than ``CAP`` candidates above the floor cannot all be sorted: the part
fails closed (NG 'error') rather than dropping boxes that might be the defect. NMS-free
outputs and the other families do not come here; their outputs are copied back whole.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.backends.device import DeviceTensor
from inspector.errors import ModelError
from inspector.models.detection import DetectionPostprocessor
from inspector.nvidia import driver as cu
from inspector.nvidia.nvrtc import compile_cubin
from inspector.preprocess.geometry import Geometry
from inspector.types import Finding

#: Most candidates above the confidence floor one part may have (one NMS block sorts them).
CAP = 1024
_THREADS = 256
_HEADER = 4  # kept, candidates, non-finite values, (unused)

DETECT_SOURCE = r"""
struct CandParams {
    int n;            // candidates
    int nc;           // classes
    int stride_c;     // elements between two channels of one candidate
    int stride_i;     // elements between two candidates of one channel
    int first_score;  // 4: YOLOv8 (no objectness); 5: YOLOv5 (channel 4 is objectness)
    int is_half;      // output is fp16
    float floor;      // detection.conf
    int cap;          // rows of cand
};

struct NmsParams {
    int cap;
    float iou;
    int max_det;
};

__device__ __forceinline__ float load_any(const void* src, int is_half, long long i) {
    if (!is_half) return ((const float*)src)[i];
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(((const unsigned short*)src)[i]));
    return f;
}

__device__ __forceinline__ bool finite(float x) {
    return (__float_as_int(x) & 0x7f800000) != 0x7f800000;
}

extern "C" __global__ void inspector_candidates(const void* src, CandParams p, float* cand,
                                                int* counters) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.n) return;
    long long base = (long long)i * p.stride_i, sc = p.stride_c;
    float cx = load_any(src, p.is_half, base);
    float cy = load_any(src, p.is_half, base + sc);
    float w = load_any(src, p.is_half, base + 2 * sc);
    float h = load_any(src, p.is_half, base + 3 * sc);
    bool ok = finite(cx) && finite(cy) && finite(w) && finite(h);
    float obj = 1.0f;
    if (p.first_score == 5) {
        obj = load_any(src, p.is_half, base + 4 * sc);
        ok = ok && finite(obj);
    }
    float best = 0.0f;
    int cls = 0;
    for (int c = 0; c < p.nc; ++c) {
        float v = load_any(src, p.is_half, base + (long long)(p.first_score + c) * sc);
        ok = ok && finite(v);
        float s = p.first_score == 5 ? v * obj : v;
        if (c == 0 || s > best) { best = s; cls = c; }
    }
    if (!ok) { atomicAdd(&counters[1], 1); return; }
    if (!(best >= p.floor)) return;
    int slot = atomicAdd(&counters[0], 1);
    if (slot >= p.cap) return;
    float hw = w * 0.5f, hh = h * 0.5f;
    float* o = cand + (long long)slot * 7;
    o[0] = cx - hw; o[1] = cy - hh; o[2] = cx + hw; o[3] = cy + hh;
    o[4] = best; o[5] = (float)cls; o[6] = __int_as_float(i);
}

// Whether candidate (ka, ia) comes before (kb, ib): higher score first, then lower anchor.
__device__ __forceinline__ bool before(float ka, int ia, float kb, int ib) {
    return ka > kb || (ka == kb && ia < ib);
}

#define NMS_CAP 1024

extern "C" __global__ void inspector_nms(const float* cand, const int* counters, NmsParams q,
                                         float* out) {
    __shared__ float key[NMS_CAP];
    __shared__ int anchor[NMS_CAP];
    __shared__ short idx[NMS_CAP];
    __shared__ float box[NMS_CAP][4];
    __shared__ int cls[NMS_CAP];
    __shared__ unsigned char removed[NMS_CAP];
    __shared__ int kept;
    int t = threadIdx.x, nt = blockDim.x;
    int total = counters[0];
    int n = total < q.cap ? total : q.cap;
    int m = 1;
    while (m < n) m <<= 1;
    for (int i = t; i < m; i += nt) {
        key[i] = i < n ? cand[i * 7 + 4] : -3.0e38f;
        anchor[i] = i < n ? __float_as_int(cand[i * 7 + 6]) : 0x7fffffff;
        idx[i] = (short)i;
    }
    __syncthreads();
    // Bitonic sort: best score first, equal scores by anchor.
    for (int k = 2; k <= m; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = t; i < m; i += nt) {
                int l = i ^ j;
                if (l > i) {
                    float a = key[i], b = key[l];
                    int aa = anchor[i], ab = anchor[l];
                    bool swap = ((i & k) == 0) ? before(b, ab, a, aa) : before(a, aa, b, ab);
                    if (swap) {
                        key[i] = b; key[l] = a;
                        anchor[i] = ab; anchor[l] = aa;
                        short s = idx[i]; idx[i] = idx[l]; idx[l] = s;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int i = t; i < n; i += nt) {
        const float* c = cand + (long long)idx[i] * 7;
        box[i][0] = c[0]; box[i][1] = c[1]; box[i][2] = c[2]; box[i][3] = c[3];
        cls[i] = (int)c[5];
        removed[i] = 0;
    }
    if (t == 0) kept = 0;
    __syncthreads();
    // Greedy class-aware NMS, as models/detection.nms: keep the best box left, drop the
    // boxes of its class whose IoU with it exceeds the threshold, repeat.
    for (int i = 0; i < n; ++i) {
        if (removed[i]) continue;  // the same shared value for every thread
        float x1 = box[i][0], y1 = box[i][1], x2 = box[i][2], y2 = box[i][3];
        float area = fmaxf(x2 - x1, 0.0f) * fmaxf(y2 - y1, 0.0f);
        if (t == 0) {
            float* o = out + 4 + kept * 6;
            o[0] = x1; o[1] = y1; o[2] = x2; o[3] = y2; o[4] = key[i]; o[5] = (float)cls[i];
        }
        for (int j = i + 1 + t; j < n; j += nt) {
            if (removed[j] || cls[j] != cls[i]) continue;
            float bx1 = box[j][0], by1 = box[j][1], bx2 = box[j][2], by2 = box[j][3];
            float iw = fmaxf(fminf(x2, bx2) - fmaxf(x1, bx1), 0.0f);
            float ih = fmaxf(fminf(y2, by2) - fmaxf(y1, by1), 0.0f);
            float inter = iw * ih;
            float other = fmaxf(bx2 - bx1, 0.0f) * fmaxf(by2 - by1, 0.0f);
            if (inter / fmaxf(area + other - inter, 1e-9f) > q.iou) removed[j] = 1;
        }
        __syncthreads();
        if (t == 0) kept += 1;
        __syncthreads();
        if (kept >= q.max_det) break;
    }
    if (t == 0) {
        out[0] = (float)kept;
        out[1] = (float)total;
        out[2] = (float)counters[1];
        out[3] = 0.0f;
    }
}
"""


class _CandParams(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int),
        ("nc", ctypes.c_int),
        ("stride_c", ctypes.c_int),
        ("stride_i", ctypes.c_int),
        ("first_score", ctypes.c_int),
        ("is_half", ctypes.c_int),
        ("floor", ctypes.c_float),
        ("cap", ctypes.c_int),
    ]


class _NmsParams(ctypes.Structure):
    _fields_ = [("cap", ctypes.c_int), ("iou", ctypes.c_float), ("max_det", ctypes.c_int)]


_modules: dict[str, tuple[Any, Any, Any]] = {}
_modules_lock = threading.Lock()


def _kernels(arch: str) -> tuple[Any, Any]:
    """``(candidates, nms)`` functions, compiled and loaded once per process."""
    with _modules_lock:
        if arch not in _modules:
            cubin = compile_cubin(DETECT_SOURCE, "inspector_detect", arch)
            module, cand = cu.module_load(cubin, "inspector_candidates")
            _modules[arch] = (module, cand, cu.module_function(module, "inspector_nms"))
        _, cand, nms = _modules[arch]
    return cand, nms


def yolo_layout(post: object, output: DeviceTensor) -> str | None:
    """'yolov8' or 'yolov5' when the device can finish this detector (a raw YOLO head,
    its layout resolved and checked at load by ``models/detection.build``), else None:
    the outputs then come back whole and the host postprocessor reads them (NMS-free
    and EfficientNMS layouts, the other families)."""
    if not isinstance(post, DetectionPostprocessor) or len(output.shape) != 3:
        return None
    return post.layout if post.layout in ("yolov8", "yolov5") else None


class DeviceDetect:
    """One lane's candidate filter + NMS buffers; ``enqueue`` on the lane's stream, then
    ``findings`` once the part's last event completed."""

    def __init__(self, post: DetectionPostprocessor, output: DeviceTensor, layout: str) -> None:
        info = cu.make_current()
        self._cand_fn, self._nms_fn = _kernels(info.arch)
        self.post = post
        _, a, b = output.shape
        n, channels = (b, a) if layout == "yolov8" else (a, b)
        first = 4 if layout == "yolov8" else 5
        self._cand = cu.DeviceBuffer(CAP * 7 * 4)
        self._counters = cu.DeviceBuffer(2 * 4)
        rows = _HEADER + post.max_det * 6
        self._out = cu.DeviceBuffer(rows * 4)
        self.host = cu.PinnedArray((rows,), "float32")
        self._params = _CandParams(
            n=n,
            nc=channels - first,
            stride_c=n if layout == "yolov8" else 1,
            stride_i=1 if layout == "yolov8" else channels,
            first_score=first,
            is_half=int(output.dtype == "float16"),
            floor=post.conf,
            cap=CAP,
        )
        self._src = ctypes.c_void_p(0)
        self._cand_args = cu.KernelArgs(
            self._src,
            self._params,
            ctypes.c_void_p(self._cand.ptr),
            ctypes.c_void_p(self._counters.ptr),
        )
        nms = _NmsParams(cap=CAP, iou=post.iou, max_det=post.max_det)
        self._nms_args = cu.KernelArgs(
            ctypes.c_void_p(self._cand.ptr),
            ctypes.c_void_p(self._counters.ptr),
            nms,
            ctypes.c_void_p(self._out.ptr),
        )
        self._grid = (-(-n // _THREADS), 1, 1)

    def enqueue(self, outputs: list[DeviceTensor], stream: int) -> None:
        """Filter, NMS and copy back the first output (the model's raw detections)."""
        raw = outputs[0]
        self._src.value = raw.ptr
        self._params.is_half = int(raw.dtype == "float16")
        cu.memset_d32_async(self._counters.ptr, 0, 2, stream)
        cu.launch(self._cand_fn, self._grid, (_THREADS, 1, 1), stream, self._cand_args.pointer)
        cu.launch(self._nms_fn, (1, 1, 1), (_THREADS, 1, 1), stream, self._nms_args.pointer)
        cu.copy_dtoh_async(self.host.ptr, self._out.ptr, self.host.nbytes, stream)

    def findings(self, geometry: Geometry) -> list[Finding]:
        """The kept boxes as findings in frame pixels; ModelError where the CPU path
        would fail too (non-finite output) or where the device could not sort them all."""
        head = self.host.array
        kept, total, nonfinite = int(head[0]), int(head[1]), int(head[2])
        name = self.post.name
        if nonfinite:
            raise ModelError(f"{name}: output contains NaN or inf ({nonfinite} candidates)")
        if total > CAP:
            raise ModelError(
                f"{name}: {total} candidates above detection.conf {self.post.conf} "
                f"(the device sorts at most {CAP}); raise detection.conf"
            )
        rows: npt.NDArray[np.float32] = head[_HEADER : _HEADER + kept * 6].reshape(kept, 6)
        class_ids = rows[:, 5].astype(np.intp)
        return self.post.findings(rows[:, :4].copy(), rows[:, 4].copy(), class_ids, geometry)

    def close(self) -> None:
        for buf in (self._cand, self._counters, self._out, self.host):
            buf.close()


class RawOutputs:
    """Outputs the device does not finish (NMS-free layouts, other families): copied back
    whole, then read by the host postprocessor as on the CPU path."""

    def __init__(self, post: Any, outputs: list[DeviceTensor]) -> None:
        self.post = post
        self.host = [cu.PinnedArray(o.shape, o.dtype) for o in outputs]

    def enqueue(self, outputs: list[DeviceTensor], stream: int) -> None:
        for host, dev in zip(self.host, outputs, strict=True):
            cu.copy_dtoh_async(host.ptr, dev.ptr, host.nbytes, stream)

    def findings(self, geometry: Geometry) -> list[Finding]:
        outputs = [np.array(h.array, dtype=np.float32) for h in self.host]
        found: list[Finding] = self.post(outputs, geometry)
        return found

    def close(self) -> None:
        for buf in self.host:
            buf.close()
