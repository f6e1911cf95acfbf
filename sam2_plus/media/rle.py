"""COCO run-length encoding of binary masks, compatible with pycocotools.

A mask is encoded column-major (Fortran order) as alternating run lengths that
start with a run of zeros, then packed into COCO's compact ASCII string. We use
pycocotools to encode when it is installed and an equivalent pure-numpy
implementation otherwise; both produce identical strings.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # optional C implementation
    from pycocotools import mask as _coco_mask
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    _coco_mask = None


MAX_SIDE = 2**24 - 1  # keeps H * W, every run length and the parse's sums well within int64
MAX_NUMBER_CHARS = 13  # a 64-bit run length takes at most 13 characters of the compact string


class RLEError(ValueError):
    """A run-length encoded mask is malformed."""


def encode_rle(mask: np.ndarray, *, use_pycocotools: bool = True) -> dict[str, Any]:
    """Encode an HxW boolean mask as ``{"size": [H, W], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    height, width = mask.shape
    if use_pycocotools and _coco_mask is not None:
        encoded = _coco_mask.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
        return {"size": [int(height), int(width)], "counts": encoded["counts"].decode("ascii")}
    return {"size": [int(height), int(width)], "counts": counts_to_string(mask_to_counts(mask))}


def decode_rle(rle: Mapping[str, Any], *, use_pycocotools: bool = False) -> np.ndarray:
    """Decode a COCO RLE (compressed string or uncompressed list of counts) to an HxW bool mask.

    The counts are validated first (pycocotools silently accepts counts that do
    not cover the image and returns garbage), so a malformed RLE raises RLEError.
    Decoding defaults to numpy: it is nearly as fast, and pycocotools 2.0.x's
    decode emits a DeprecationWarning on every call under NumPy 2.
    """
    height, width = rle_size(rle)
    counts = rle_counts(rle)
    if use_pycocotools and _coco_mask is not None and height * width > 0:
        compressed = {"size": [height, width], "counts": counts_to_string(counts).encode("ascii")}
        return _coco_mask.decode(compressed).astype(bool)
    return counts_to_mask(counts, height, width)


def rle_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    """Return (H, W) from an RLE dict, validating its shape."""
    if not isinstance(rle, Mapping):
        raise RLEError(f"RLE must be an object with 'size' and 'counts', got {type(rle).__name__}")
    size = rle.get("size")
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or not all(_is_int(v) and 0 <= v <= MAX_SIDE for v in size)
    ):
        raise RLEError(f"RLE 'size' must be [H, W] with integers from 0 to {MAX_SIDE}, got {_shown(size)}")
    return int(size[0]), int(size[1])


def rle_counts(rle: Mapping[str, Any]) -> list[int]:
    """Return the validated list of run lengths of an RLE dict (compressed or not)."""
    height, width = rle_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, (str, Sequence)):
        _check_counts_length(counts, height, width)
    if isinstance(counts, str):
        runs = parse_counts_string(counts, height * width)
    elif isinstance(counts, Sequence):
        if not all(_is_int(v) for v in counts):
            raise RLEError("RLE 'counts' list must contain only integers")
        runs = [int(v) for v in counts]
    else:
        raise RLEError(f"RLE 'counts' must be a string or a list of integers, got {type(counts).__name__}")
    if any(v < 0 for v in runs):
        raise RLEError("RLE 'counts' contains a negative run length")
    total = sum(runs)
    if total != height * width:
        raise RLEError(f"RLE run lengths sum to {total}, but size {height}x{width} needs {height * width}")
    return runs


def max_counts_length(height: int, width: int, compressed: bool) -> int:
    """The most runs (a list) or characters (a compressed string) the counts of an HxW mask take: at most
    H*W + 1 runs, each a number (or, in the string, a difference of two) of magnitude at most H*W."""
    pixels = height * width
    runs = pixels + 1
    if not compressed:
        return runs
    chars_per_run = max(1, (pixels.bit_length() + 5) // 5)  # 5 bits a character, with a sign bit
    return runs * chars_per_run


def _check_counts_length(counts: str | Sequence[Any], height: int, width: int) -> None:
    """Refuse counts longer than any HxW mask needs before parsing or expanding them (their cost grows with
    their length)."""
    compressed = isinstance(counts, str)
    most = max_counts_length(height, width, compressed)
    if len(counts) > most:
        unit = "characters" if compressed else "run lengths"
        raise RLEError(f"RLE 'counts' has {len(counts)} {unit}; a {height}x{width} mask takes at most {most}")


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths of a binary mask, starting with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    boundaries = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(boundaries).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return runs


def counts_to_mask(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return flat.reshape((width, height)).T.copy()


def counts_to_string(counts: Sequence[int]) -> str:
    """Pack run lengths into COCO's ASCII format (port of pycocotools' rleToString)."""
    chars: list[str] = []
    for i, count in enumerate(counts):
        value = int(count)
        if i > 2:  # counts after the first two are stored as differences to the run two back
            value -= int(counts[i - 2])
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5  # arithmetic shift, like the C long
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            chars.append(chr(chunk + 48))
    return "".join(chars)


def parse_counts_string(text: str, pixels: int) -> list[int]:
    """Unpack COCO's compact counts string (pycocotools' rleFrString) of a mask of `pixels` pixels, in numpy:
    a string of millions of characters takes milliseconds. Malformed strings are refused (when a string has
    several faults, the one named may not be the first), and so are numbers larger than the mask."""
    characters = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    bad = np.flatnonzero((characters < 48) | (characters >= 48 + 64))
    if bad.size:
        raise RLEError(f"RLE 'counts' string has an invalid character {text[int(bad[0])]!r}")
    codes = (characters - 48).astype(np.uint8)
    del characters
    ends = np.flatnonzero((codes & 0x20) == 0)  # the last character of each number
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lengths = ends - starts + 1
    tail = len(codes) - (int(ends[-1]) + 1 if ends.size else 0)  # characters after the last number
    if (lengths.size and lengths.max() > MAX_NUMBER_CHARS) or tail >= MAX_NUMBER_CHARS:
        raise RLEError(f"RLE 'counts' string has a number longer than {MAX_NUMBER_CHARS} characters")
    if tail:
        raise RLEError("RLE 'counts' string ends in the middle of a number")
    if not ends.size:
        return []
    if ends.size > pixels + 1:
        raise RLEError(f"RLE 'counts' string has {ends.size} run lengths; a mask of {pixels} pixels has at most "
                       f"{pixels + 1}")
    if lengths.max() > 12:  # 13 characters: over 2**59, larger than any run of this mask
        raise RLEError(f"RLE 'counts' string has a number larger than the {pixels} pixels of the mask")
    used = codes[: int(ends[-1]) + 1]
    position = (np.arange(len(used), dtype=np.int32) - np.repeat(starts.astype(np.int32), lengths)).astype(np.uint8)
    values = np.add.reduceat((used & 0x1F).astype(np.int64) << (5 * position.astype(np.int64)), starts)
    values -= np.where(used[ends] & 0x10, np.left_shift(1, 5 * lengths), 0)  # the sign of the last character
    if np.abs(values).max() > pixels:
        raise RLEError(f"RLE 'counts' string has a number larger than the {pixels} pixels of the mask")
    counts = values.copy()
    counts[1::2] = np.cumsum(values[1::2])  # counts[i] = values[i] + counts[i - 2] for i > 2
    counts[2::2] = np.cumsum(values[2::2])
    return counts.tolist()


def _shown(value: Any) -> str:
    try:
        return reprlib.repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return "a value too large to show"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
