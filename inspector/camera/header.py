"""Image file headers: size and sample depth without decoding (step 2 of the flow).

The folder camera reads a file's header before it decodes the pixels, so an image too
large to decode within the cycle is refused in well under a millisecond (a 16000×16000
PNG took more than a second to decode and blocked acquisition). PNG, JPEG, BMP and TIFF
headers are read here with the standard library only; anything else, or a header that
cannot be parsed, is refused: the part is NG no_image, never guessed at.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from inspector.errors import FrameError

_PNG = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})
#: Most bytes skipped through JPEG segments and TIFF entries before giving up.
_MAX_SCAN = 1 << 20


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What a file says about its pixels."""

    width: int
    height: int
    bits: int  # bits per sample (8, 16, ...); 0 when the header does not say

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(path: Path) -> ImageHeader:
    """The size and sample depth in ``path``'s header; FrameError if it cannot be read."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
            if head.startswith(_PNG):
                return _png(head)
            if head[:2] == b"\xff\xd8":
                return _jpeg(f)
            if head[:2] == b"BM":
                return _bmp(head)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff(f, head)
    except OSError as exc:
        raise FrameError(f"cannot read {path}: {exc.strerror}") from exc
    except (struct.error, ValueError) as exc:
        raise FrameError(f"{path}: damaged image header ({exc})") from exc
    raise FrameError(f"{path}: not a PNG, JPEG, BMP or TIFF image")


def _png(head: bytes) -> ImageHeader:
    if head[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    width, height, bits = struct.unpack(">IIB", head[16:25])
    return ImageHeader(width, height, bits)


def _bmp(head: bytes) -> ImageHeader:
    width, height = struct.unpack("<ii", head[18:26])
    (bpp,) = struct.unpack("<H", head[28:30])
    return ImageHeader(abs(width), abs(height), 8 if bpp in (8, 24, 32) else bpp)


def _jpeg(f: BinaryIO) -> ImageHeader:
    f.seek(2)
    while f.tell() < _MAX_SCAN:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise ValueError("no frame header")
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue  # markers without a length
        (length,) = struct.unpack(">H", f.read(2))
        if marker[1] in _JPEG_SOF:
            bits, height, width = struct.unpack(">BHH", f.read(5))
            return ImageHeader(width, height, bits)
        f.seek(length - 2, 1)
    raise ValueError("no frame header in the first MiB")


def _tiff(f: BinaryIO, head: bytes) -> ImageHeader:
    order = "<" if head[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", head[4:8])
    if ifd > _MAX_SCAN:
        raise ValueError("first IFD beyond the first MiB")
    f.seek(ifd)
    (count,) = struct.unpack(order + "H", f.read(2))
    tags: dict[int, int] = {}
    for _ in range(min(count, 512)):
        tag, kind, n, raw = struct.unpack(order + "HHI4s", f.read(12))
        if n != 1:
            continue  # an array elsewhere in the file (e.g. BitsPerSample of RGB): unknown
        if kind == 3:  # SHORT, left-justified in the value field
            (tags[tag],) = struct.unpack(order + "H", raw[:2])
        elif kind == 4:  # LONG
            (tags[tag],) = struct.unpack(order + "I", raw)
    if 256 not in tags or 257 not in tags:
        raise ValueError("no ImageWidth/ImageLength")
    return ImageHeader(tags[256], tags[257], tags.get(258, 0))
