"""The test oracle for COCO's compact RLE counts: a plain loop, one character at a time, as pycocotools'
rleFrString reads them (sam2_plus.media.rle.parse_counts_string does the same in numpy)."""

from __future__ import annotations

from sam2_plus.media.rle import MAX_NUMBER_CHARS, RLEError


def string_to_counts(text: str) -> list[int]:
    """Run lengths of a compact counts string, or RLEError with the same messages as the app's parse."""
    counts: list[int] = []
    position = 0
    length = len(text)
    while position < length:
        value = 0
        shift = 0
        more = True
        while more:
            if position >= length:
                raise RLEError("RLE 'counts' string ends in the middle of a number")
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                raise RLEError(f"RLE 'counts' string has an invalid character {text[position]!r}")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if more and shift == MAX_NUMBER_CHARS:  # also keeps the decoding linear in the string's length
                raise RLEError(f"RLE 'counts' string has a number longer than {MAX_NUMBER_CHARS} characters")
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts
