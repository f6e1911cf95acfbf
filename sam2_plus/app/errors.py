"""Errors the app shows to people: input it cannot use, and one line for each kind of failure."""

from __future__ import annotations

from ..errors import describe_error, is_out_of_memory
from ..media.decode import MediaError
from ..media.encode import EncodeError
from ..prompts import PromptError
from ..weights import CheckpointError


class AppInputError(ValueError):
    """Input the app cannot use; the message says what to change."""


class QueueFullError(AppInputError):
    """Too many jobs wait for the GPU; the message says to try again later."""


def user_message(error: BaseException) -> str:
    """One line for people about an error of sam2_plus.errors.INPUT_ERRORS or AppInputError."""
    if isinstance(error, MediaError):
        return f"The video cannot be used: {error}"
    if isinstance(error, PromptError):
        return f"Invalid prompts: {error}"
    if isinstance(error, CheckpointError):  # the app's fix is its setting (SAM2PLUS_WEIGHTS), not checkpoint=...
        return f"The model weights are not available: {error.for_settings}"
    if isinstance(error, EncodeError):
        return f"Writing the results failed: {error}"
    return str(error)


def failure_message(error: BaseException) -> str:
    """One line for people about an unexpected error of a job (not their input)."""
    if is_out_of_memory(error):
        return "Out of memory: track fewer objects or a shorter or smaller video, or try again later."
    return f"Tracking failed ({describe_error(error)}). Try again; if it fails again, please report it."


MAX_NAME_CHARS = 120  # of a file name shown to people


def refused_upload(name: str, mime: str) -> str:
    """Why the video input refused a file (one that is not a video), for people."""
    shown = _markdown_text(name) or "the file"
    kind = f" ({_markdown_text(mime)})" if mime else ""
    if mime.startswith("image/"):
        return (f"{shown}{kind} is an image, not a video: open it with *Or open an image* under the video input "
                "(PNG, JPEG, WebP).")
    return f"{shown}{kind} is not a video: upload a video file (MP4, MOV, WebM, MKV, AVI, ...)."


def _markdown_text(text: str) -> str:
    """`text` (from the browser) as plain text in Markdown: one line, at most MAX_NAME_CHARS, its markup escaped."""
    text = "".join(ch for ch in str(text) if ch.isprintable())[:MAX_NAME_CHARS]
    return "".join(f"\\{ch}" if ch in "\\`*_{}[]()#+-.!|<>~" else ch for ch in text)
