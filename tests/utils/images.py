"""Still images for tests, made here: scikit-image's astronaut (a face MTCNN finds) in every mode and
format the service takes, animations it refuses, and files that lie about their size."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "ASTRONAUT_PORTRAIT",
    "astronaut",
    "bomb_png",
    "encode",
    "rotated_jpeg",
    "sixteen_bit_rgb_png",
]

# The astronaut cropped to a portrait (taller than wide), so a quarter turn shows in the size.
ASTRONAUT_PORTRAIT = (slice(0, 512), slice(64, 448))  # 512 high, 384 wide


def astronaut() -> np.ndarray:
    """512×384 RGB uint8 with one face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[ASTRONAUT_PORTRAIT])


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rotated_jpeg(pixels: np.ndarray) -> bytes:
    """A JPEG stored turned a quarter counter-clockwise, with EXIF orientation 6 (turn it back
    clockwise to display): only a reader that applies the orientation sees ``pixels`` upright."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def sixteen_bit_rgb_png(pixels: np.ndarray) -> bytes:
    """``pixels`` (8-bit RGB) written as a 48-bit PNG (16 bits a channel), by hand."""
    height, width = pixels.shape[:2]
    wide = pixels.astype(">u2") * 257
    raw = b"".join(b"\x00" + wide[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def bomb_png(path: Path, *, side: int = 60_000) -> Path:
    """A PNG whose header claims ``side``×``side`` grey pixels (3.6 Gpixel by default) over a few
    kilobytes: decoded, it would fill gigabytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * side
    compressor = zlib.compressobj(9)
    body = compressor.compress(row * 64) + compressor.flush()
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def flat_grey_png(path: Path, *, width: int, height: int, bit_depth: int = 8) -> Path:
    """A complete, valid grey PNG of ``width``×``height`` black pixels (8 or 16 bits each), written
    a row at a time: a few kilobytes on disk however large it decodes."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    row = b"\x00" * (1 + width * bit_depth // 8)
    rows_at_once = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    body = b"".join(
        compressor.compress(row * min(rows_at_once, height - done)) for done in range(0, height, rows_at_once)
    )
    body += compressor.flush()
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path
