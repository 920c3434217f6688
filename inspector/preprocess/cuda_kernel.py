"""Source of the fused preprocessing kernel (compiled by NVRTC in ``preprocess/cuda.py``).

One thread per model-input pixel does, in one pass: fetch the (up to) four source pixels
the bilinear resize needs, debayering each on the fly, interpolate, normalise and write
all three channels in CHW order as fp32 or fp16. Nothing is staged in between, so the
frame is read once (from L1/L2) and the input tensor written once.

It reproduces the CPU path (``preprocess/cpu.py``) on purpose:

- debayer = OpenCV's bilinear ``cvtColor(Bayer*2BGR)``, integer rounding included: at a
  red/blue site green is ``(N+S+W+E+2)>>2`` and the other colour ``(4 diagonals+2)>>2``;
  at a green site ``(a+b+1)>>1`` of the two neighbours. OpenCV computes rows/columns
  1..H-2 / 1..W-2 and copies the outermost ones from their inner neighbours, which is
  the same as clamping the coordinate to ``[1, size-2]`` before debayering.
- resize = ``cv2.resize(INTER_LINEAR)`` on uint8, in OpenCV's own fixed point: the
  taps (source index and two 11-bit weights per output column and row) are computed on
  the host exactly as OpenCV computes them (``resize_taps``: ``fx`` in float32 from
  ``(dx+0.5)*scale-0.5`` in double, weights ``cvRound(w*2048)``) and read from a small
  device table; the horizontal pass sums in int, the vertical pass rounds as OpenCV's
  vector code does, ``((h0>>4)*b0>>16) + ((h1>>4)*b1>>16) + 2 >> 2``, to uint8. For
  downscaling (the camera-to-model case) the result equals ``cv2.resize`` bit for bit
  (``tools/kernel_cpu_check.py``; a 2x step is OpenCV's 4-pixel average ``(sum+2)>>2``
  by the same formula); upscaling may differ by 1 of 255 in a few pixels in 10,000.
  The model therefore sees the same tensor on the GPU path as on the CPU path, and on
  the CPU path as Ultralytics' own preprocessing, which also resizes in uint8.
- normalisation = ``v * scale[c] + offset[c]`` with cpu.py's float32
  ``scale = 1/(255*std)`` and ``offset = -mean/std``, rounded after the product and
  after the sum as cpu.py's table is (``__fmul_rn``/``__fadd_rn``: no fused FMA), so
  the float32 input is bit-identical, and the fp16 one too (round to nearest even).

The source must also compile as plain C++ (``tools/kernel_cpu_check.py`` builds it with
g++ to compare against OpenCV without a GPU), hence no CUDA headers: fp16 is written
with one PTX instruction.
"""

from __future__ import annotations

import ctypes

import numpy as np
import numpy.typing as npt

from inspector.config import PreprocessConfig
from inspector.errors import ConfigError
from inspector.preprocess.cpu import affine, pad_levels
from inspector.preprocess.geometry import Geometry, fit

KERNEL_NAME = "inspector_preprocess"

#: pixel-format codes understood by the kernel
FMT_MONO, FMT_BGR, FMT_RGB, FMT_BAYER = 0, 1, 2, 3

KERNEL_SOURCE = r"""
// Layout mirrored by inspector.preprocess.cuda._Params (ctypes); only 4-byte fields.
struct Params {
    int src_w, src_h, src_pitch;   // bytes per row of the source
    int fmt;                       // 0 mono, 1 BGR8, 2 RGB8, 3 Bayer 8-bit
    int red_x, red_y;              // position of the red site in the 2x2 Bayer tile
    int new_w, new_h;              // size of the resized image inside the input
    int pad_x, pad_y;              // where it sits (letterbox); 0 for stretch
    int dst_w, dst_h;              // model input size
    int out_rgb;                   // 1: channel 0 is red; 0: channel 0 is blue
    int fp16;                      // 1: write half floats; 0: float32
    float mul0, mul1, mul2;        // model channel order: out = v * mul + add, where
    float add0, add1, add2;        // mul = 1/(255*std), add = -mean/std (as cpu.py)
    float pad0, pad1, pad2;        // normalised padding value per channel
};

struct Px { int b, g, r; };

#ifdef INSPECTOR_CPU_CHECK
#define FMUL(a, b) ((a) * (b))
#define FADD(a, b) ((a) + (b))
#else
#define FMUL(a, b) __fmul_rn((a), (b))
#define FADD(a, b) __fadd_rn((a), (b))
#endif

__device__ __forceinline__ int clampi(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// Debayer the centre of a 3x3 window w (row-major, w[4] the centre) at site (x, y),
// exactly as OpenCV's bilinear Bayer2BGR.
__device__ __forceinline__ Px debayer3(const int* w, int stride, const Params& p, int x, int y) {
    int ctr = w[0];
    int up = w[-stride], down = w[stride], left = w[-1], right = w[1];
    int cross = up + down + left + right;
    int diag = w[-stride - 1] + w[-stride + 1] + w[stride - 1] + w[stride + 1];
    int horiz = (left + right + 1) >> 1;
    int vert = (up + down + 1) >> 1;
    int px = (x - p.red_x) & 1, py = (y - p.red_y) & 1;
    Px o;
    if (px == 0 && py == 0) {          // red site
        o.r = ctr; o.g = (cross + 2) >> 2; o.b = (diag + 2) >> 2;
    } else if (px == 1 && py == 1) {   // blue site
        o.b = ctr; o.g = (cross + 2) >> 2; o.r = (diag + 2) >> 2;
    } else if (py == 0) {              // green site on a red row
        o.g = ctr; o.r = horiz; o.b = vert;
    } else {                           // green site on a blue row
        o.g = ctr; o.b = horiz; o.r = vert;
    }
    return o;
}

// One debayered pixel (borders: OpenCV copies the outer rows/columns from their inner
// neighbours, i.e. the coordinate clamps into [1, size-2]).
__device__ __forceinline__ Px bayer_at(const unsigned char* s, const Params& p, int x, int y) {
    x = clampi(x, 1, p.src_w - 2);
    y = clampi(y, 1, p.src_h - 2);
    int w[9];
    for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 3; ++i)
            w[j * 3 + i] = s[(long long)(y - 1 + j) * p.src_pitch + (x - 1 + i)];
    return debayer3(w + 4, 3, p, x, y);
}

// The four bilinear taps (x0..x0+1, y0..y0+1) of a Bayer frame from one 4x4 window:
// 16 loads instead of 4 x 9. Falls back to bayer_at where a clamp breaks adjacency.
__device__ __forceinline__ void bayer_quad(const unsigned char* s, const Params& p, int x0,
                                           int x1, int y0, int y1, Px* q) {
    int bx0 = clampi(x0, 1, p.src_w - 2), bx1 = clampi(x1, 1, p.src_w - 2);
    int by0 = clampi(y0, 1, p.src_h - 2), by1 = clampi(y1, 1, p.src_h - 2);
    if (bx1 != bx0 + 1 || by1 != by0 + 1) {
        q[0] = bayer_at(s, p, x0, y0); q[1] = bayer_at(s, p, x1, y0);
        q[2] = bayer_at(s, p, x0, y1); q[3] = bayer_at(s, p, x1, y1);
        return;
    }
    int w[16];
    for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 4; ++i)
            w[j * 4 + i] = s[(long long)(by0 - 1 + j) * p.src_pitch + (bx0 - 1 + i)];
    q[0] = debayer3(w + 5, 4, p, bx0, by0);
    q[1] = debayer3(w + 6, 4, p, bx1, by0);
    q[2] = debayer3(w + 9, 4, p, bx0, by1);
    q[3] = debayer3(w + 10, 4, p, bx1, by1);
}

__device__ __forceinline__ Px pixel_at(const unsigned char* s, const Params& p, int x, int y) {
    Px o;
    if (p.fmt == 3) return bayer_at(s, p, x, y);
    if (p.fmt == 0) {
        int v = s[(long long)y * p.src_pitch + x];
        o.b = v; o.g = v; o.r = v;
        return o;
    }
    const unsigned char* q = s + (long long)y * p.src_pitch + 3 * x;
    if (p.fmt == 1) { o.b = q[0]; o.g = q[1]; o.r = q[2]; }
    else            { o.r = q[0]; o.g = q[1]; o.b = q[2]; }
    return o;
}

// One output value of cv2.resize INTER_LINEAR on uint8: the horizontal pass in int with
// 11-bit weights, the vertical pass rounded as OpenCV's vector code rounds it.
__device__ __forceinline__ int lerp_u8(int a, int b, int c, int d, int wx, int wy) {
    int h0 = a * (wx >> 16) + b * (wx & 0xFFFF);
    int h1 = c * (wx >> 16) + d * (wx & 0xFFFF);
    int v = ((((h0 >> 4) * (wy >> 16)) >> 16) + (((h1 >> 4) * (wy & 0xFFFF)) >> 16) + 2) >> 2;
    return v < 0 ? 0 : (v > 255 ? 255 : v);
}

__device__ __forceinline__ unsigned short to_half(float v) {
#ifdef INSPECTOR_CPU_CHECK
    return inspector_cpu_half(v);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
#endif
}

__device__ __forceinline__ void store(void* dst, const Params& p, int c, long long i, float v) {
    long long off = (long long)c * p.dst_w * p.dst_h + i;
    if (p.fp16) ((unsigned short*)dst)[off] = to_half(v);
    else ((float*)dst)[off] = v;
}

// taps: per resized column, then per resized row, two ints: the first source index and
// the two weights (w0 << 16 | w1, in 1/2048), as resize_taps() computes them.
extern "C" __global__ void inspector_preprocess(const unsigned char* src, void* dst,
                                                const int* taps, Params p) {
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= p.dst_w || oy >= p.dst_h) return;
    long long i = (long long)oy * p.dst_w + ox;
    int dx = ox - p.pad_x, dy = oy - p.pad_y;
    if (dx < 0 || dy < 0 || dx >= p.new_w || dy >= p.new_h) {
        store(dst, p, 0, i, p.pad0);
        store(dst, p, 1, i, p.pad1);
        store(dst, p, 2, i, p.pad2);
        return;
    }
    int x0 = taps[2 * dx], wx = taps[2 * dx + 1];
    int y0 = taps[2 * (p.new_w + dy)], wy = taps[2 * (p.new_w + dy) + 1];
    int x1 = x0 + 1 < p.src_w ? x0 + 1 : p.src_w - 1;
    int y1 = y0 + 1 < p.src_h ? y0 + 1 : p.src_h - 1;
    Px q[4];
    if (p.fmt == 3) {
        bayer_quad(src, p, x0, x1, y0, y1, q);
    } else {
        q[0] = pixel_at(src, p, x0, y0); q[1] = pixel_at(src, p, x1, y0);
        q[2] = pixel_at(src, p, x0, y1); q[3] = pixel_at(src, p, x1, y1);
    }
    float vb = (float)lerp_u8(q[0].b, q[1].b, q[2].b, q[3].b, wx, wy);
    float vg = (float)lerp_u8(q[0].g, q[1].g, q[2].g, q[3].g, wx, wy);
    float vr = (float)lerp_u8(q[0].r, q[1].r, q[2].r, q[3].r, wx, wy);
    float c0 = p.out_rgb ? vr : vb, c2 = p.out_rgb ? vb : vr;
    store(dst, p, 0, i, FADD(FMUL(c0, p.mul0), p.add0));
    store(dst, p, 1, i, FADD(FMUL(vg, p.mul1), p.add1));
    store(dst, p, 2, i, FADD(FMUL(c2, p.mul2), p.add2));
}
"""


_BAYER_RED = {"BayerRG8": (0, 0), "BayerGR8": (1, 0), "BayerGB8": (0, 1), "BayerBG8": (1, 1)}
_FMT = {"Mono8": FMT_MONO, "BGR8": FMT_BGR, "RGB8": FMT_RGB}


# Field order = the kernel's struct Params.
_INT_FIELDS = (
    "src_w",
    "src_h",
    "src_pitch",
    "fmt",
    "red_x",
    "red_y",
    "new_w",
    "new_h",
    "pad_x",
    "pad_y",
    "dst_w",
    "dst_h",
    "out_rgb",
    "fp16",
)
_FLOAT_FIELDS = (
    "mul0",
    "mul1",
    "mul2",
    "add0",
    "add1",
    "add2",
    "pad0",
    "pad1",
    "pad2",
)


class KernelParams(ctypes.Structure):
    """The kernel's ``Params`` struct, field for field (all 4 bytes, so no padding)."""

    _fields_ = [(n, ctypes.c_int) for n in _INT_FIELDS] + [
        (n, ctypes.c_float) for n in _FLOAT_FIELDS
    ]


def kernel_params(
    pixel_format: str,
    src_hw: tuple[int, int],
    input_hw: tuple[int, int],
    cfg: PreprocessConfig,
    *,
    fp16: bool,
) -> tuple[KernelParams, Geometry]:
    """Fill the kernel parameters for one camera format/size and model input.

    Raises ConfigError for formats the kernel does not handle or frames too small to
    debayer. The geometry is computed by the same ``fit`` as the CPU path.
    """
    src_h, src_w = src_hw
    if pixel_format not in _FMT and pixel_format not in _BAYER_RED:
        raise ConfigError(f"GPU preprocessing does not support pixel format {pixel_format!r}")
    if min(src_h, src_w) < (3 if pixel_format in _BAYER_RED else 1):
        raise ConfigError(f"frame {src_w}x{src_h} is too small for {pixel_format}")
    dst_h, dst_w = input_hw
    geo = fit(src_h, src_w, dst_h, dst_w, cfg.resize)
    new_w, new_h = geo.content_wh
    scale, offset = affine(cfg)  # the CPU path's constants, bit for bit
    pad_out = pad_levels(cfg)
    red_x, red_y = _BAYER_RED.get(pixel_format, (0, 0))
    channels = 3 if pixel_format in ("BGR8", "RGB8") else 1
    p = KernelParams(
        src_w=src_w,
        src_h=src_h,
        src_pitch=src_w * channels,
        fmt=_FMT.get(pixel_format, FMT_BAYER),
        red_x=red_x,
        red_y=red_y,
        new_w=new_w,
        new_h=new_h,
        pad_x=int(geo.pad_x),
        pad_y=int(geo.pad_y),
        dst_w=dst_w,
        dst_h=dst_h,
        out_rgb=int(cfg.channel_order == "RGB"),
        fp16=int(fp16),
    )
    for c in range(3):
        setattr(p, f"mul{c}", float(scale[c]))
        setattr(p, f"add{c}", float(offset[c]))
        setattr(p, f"pad{c}", float(pad_out[c]))
    return p, geo


def resize_taps(params: KernelParams) -> npt.NDArray[np.int32]:
    """The kernel's ``taps`` table: for each resized column, then each resized row, the
    first source index and the weights ``w0 << 16 | w1`` (in 1/2048), computed exactly as
    ``cv2.resize(INTER_LINEAR)`` computes them for uint8 (``resize.cpp``: the step is
    ``1/(dst/src)`` in double, ``fx`` is rounded to float32, an index before the first or
    at/after the last pixel clamps with weight 0, weights are ``cvRound(w * 2048)``)."""
    parts = [
        _axis_taps(int(params.new_w), int(params.src_w)),
        _axis_taps(int(params.new_h), int(params.src_h)),
    ]
    return np.ascontiguousarray(np.concatenate(parts).reshape(-1), dtype=np.int32)


def _axis_taps(dst: int, src: int) -> npt.NDArray[np.int64]:
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i = np.floor(f).astype(np.int64)
    a = (f - i.astype(np.float32)).astype(np.float32)
    low, high = i < 0, i >= src - 1
    a[low | high] = 0.0
    i[low] = 0
    i[high] = src - 1
    one = np.float32(1.0)
    w0 = np.rint((one - a) * np.float32(2048)).astype(np.int64)
    w1 = np.rint(a * np.float32(2048)).astype(np.int64)
    return np.stack([i, (w0 << 16) | w1], axis=1)


def source_bytes(params: KernelParams) -> int:
    """Size of one source frame in bytes (the pinned slot size)."""
    return int(params.src_pitch) * int(params.src_h)
