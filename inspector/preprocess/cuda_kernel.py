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
- resize = ``cv2.resize(INTER_LINEAR)``: half-pixel centres, ``fx = (dx+0.5)*scale-0.5``,
  indices below 0 or at/after the last pixel clamp with weight 0. OpenCV rounds the
  resized image to uint8 and uses 11-bit weights; we keep the exact float, which differs
  by at most ~0.75/255 (tests check 1/255).
- normalisation = ``v * scale[c] + offset[c]`` with cpu.py's float32
  ``scale = 1/(255*std)`` and ``offset = -mean/std`` (the GPU fuses it into one FMA).

The source must also compile as plain C++ (``tools/kernel_cpu_check.py`` builds it with
g++ to compare against OpenCV without a GPU), hence no CUDA headers: fp16 is written
with one PTX instruction.
"""

from __future__ import annotations

import ctypes

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
    float scale_x, scale_y;        // source pixels per resized pixel
    float mul0, mul1, mul2;        // model channel order: out = v * mul + add, where
    float add0, add1, add2;        // mul = 1/(255*std), add = -mean/std (as cpu.py)
    float pad0, pad1, pad2;        // normalised padding value per channel
};

struct Px { float b, g, r; };

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
        o.r = (float)ctr; o.g = (float)((cross + 2) >> 2); o.b = (float)((diag + 2) >> 2);
    } else if (px == 1 && py == 1) {   // blue site
        o.b = (float)ctr; o.g = (float)((cross + 2) >> 2); o.r = (float)((diag + 2) >> 2);
    } else if (py == 0) {              // green site on a red row
        o.g = (float)ctr; o.r = (float)horiz; o.b = (float)vert;
    } else {                           // green site on a blue row
        o.g = (float)ctr; o.b = (float)horiz; o.r = (float)vert;
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
        float v = (float)s[(long long)y * p.src_pitch + x];
        o.b = v; o.g = v; o.r = v;
        return o;
    }
    const unsigned char* q = s + (long long)y * p.src_pitch + 3 * x;
    if (p.fmt == 1) { o.b = q[0]; o.g = q[1]; o.r = q[2]; }
    else            { o.r = q[0]; o.g = q[1]; o.b = q[2]; }
    return o;
}

// cv2.resize INTER_LINEAR source index and weight along one axis.
__device__ __forceinline__ void linear_tap(int d, float scale, int size, int* i0, int* i1,
                                           float* w) {
    float f = ((float)d + 0.5f) * scale - 0.5f;
    int i = (int)floorf(f);
    float a = f - (float)i;
    if (i < 0) { i = 0; a = 0.0f; }
    if (i >= size - 1) { i = size - 1; a = 0.0f; }
    *i0 = i;
    *i1 = i + 1 < size ? i + 1 : size - 1;
    *w = a;
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

extern "C" __global__ void inspector_preprocess(const unsigned char* src, void* dst, Params p) {
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
    int x0, x1, y0, y1;
    float ax, ay;
    linear_tap(dx, p.scale_x, p.src_w, &x0, &x1, &ax);
    linear_tap(dy, p.scale_y, p.src_h, &y0, &y1, &ay);
    Px q[4];
    if (p.fmt == 3) {
        bayer_quad(src, p, x0, x1, y0, y1, q);
    } else {
        q[0] = pixel_at(src, p, x0, y0); q[1] = pixel_at(src, p, x1, y0);
        q[2] = pixel_at(src, p, x0, y1); q[3] = pixel_at(src, p, x1, y1);
    }
    Px a = q[0], b = q[1], c = q[2], d = q[3];
    float bx = 1.0f - ax, by = 1.0f - ay;
    float vb = (a.b * bx + b.b * ax) * by + (c.b * bx + d.b * ax) * ay;
    float vg = (a.g * bx + b.g * ax) * by + (c.g * bx + d.g * ax) * ay;
    float vr = (a.r * bx + b.r * ax) * by + (c.r * bx + d.r * ax) * ay;
    float c0 = p.out_rgb ? vr : vb, c2 = p.out_rgb ? vb : vr;
    store(dst, p, 0, i, c0 * p.mul0 + p.add0);
    store(dst, p, 1, i, vg * p.mul1 + p.add1);
    store(dst, p, 2, i, c2 * p.mul2 + p.add2);
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
    "scale_x",
    "scale_y",
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
        # cv2.resize computes the source step as 1/(dst/src) in double.
        scale_x=1.0 / (new_w / src_w),
        scale_y=1.0 / (new_h / src_h),
    )
    for c in range(3):
        setattr(p, f"mul{c}", float(scale[c]))
        setattr(p, f"add{c}", float(offset[c]))
        setattr(p, f"pad{c}", float(pad_out[c]))
    return p, geo


def source_bytes(params: KernelParams) -> int:
    """Size of one source frame in bytes (the pinned slot size)."""
    return int(params.src_pitch) * int(params.src_h)
