"""A strict reader for the IDX files that MNIST is distributed in (optionally gzipped).

Header: two zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST
uses), a dimension-count byte, then one big-endian uint32 per dimension. The
reader checks the magic, the declared sizes against the bytes actually present
(before allocating anything) and rejects truncated or oversized files.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np

UNSIGNED_BYTE = 0x08
MAX_ELEMENTS = 1 << 31  # 2 Gi elements: far above any real MNIST-like file


class IdxFormatError(ValueError):
    """An IDX file is malformed: wrong magic, truncated, or absurd sizes."""


def _read_bytes(path: str, limit: int) -> bytes:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise IdxFormatError(f"{path}: cannot decompress/read ({error})") from error
    return data


def _header(path: str, expected_ndim: int | None) -> tuple[tuple[int, ...], int]:
    """The declared shape and the header's size in bytes."""
    header = _read_bytes(path, 4 + 4 * 255)[: 4 + 4 * 255]
    if len(header) < 4:
        raise IdxFormatError(f"{path}: file too short for an IDX header ({len(header)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", header[:4])
    if zero != 0 or dtype_code != UNSIGNED_BYTE or ndim == 0:
        magic = struct.unpack(">I", header[:4])[0]
        raise IdxFormatError(
            f"{path}: bad IDX magic number {magic} (0x{magic:08x}); expected unsigned-byte"
            f" data, e.g. 2051 for images or 2049 for labels"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(f"{path}: expected {expected_ndim} dimensions, header declares {ndim}")
    header_size = 4 + 4 * ndim
    if len(header) < header_size:
        raise IdxFormatError(f"{path}: truncated header ({len(header)} of {header_size} bytes)")
    return struct.unpack(f">{ndim}I", header[4:header_size]), header_size


def read_idx_shape(path: str, expected_ndim: int | None = None) -> tuple[int, ...]:
    """The shape an IDX file's header declares (only the header is read)."""
    return _header(path, expected_ndim)[0]


def read_idx(path: str, expected_ndim: int | None = None, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Reads an IDX file of unsigned bytes into a ``uint8`` array of its declared shape;
    a header declaring more than ``max_elements`` is refused before the body is read."""
    shape, header_size = _header(path, expected_ndim)
    count = math.prod(shape)
    if count > max_elements:
        raise IdxFormatError(
            f"{path}: header declares {count} elements (shape {list(shape)}), over the limit of"
            f" {max_elements}; refusing to decompress it"
        )
    data = _read_bytes(path, header_size + count)
    body = data[header_size:]
    if len(body) < count:
        raise IdxFormatError(
            f"{path}: truncated: header declares shape {shape} ({count} bytes), found {len(body)}"
        )
    if len(body) > count:
        raise IdxFormatError(f"{path}: trailing bytes after the declared shape {shape}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)
