"""Errors at the boundaries: which ones mean "this input cannot be used" (`INPUT_ERRORS`), and an error
told in one line for people (`one_line`, `describe_error`). The CLI, the batch and the app all use these."""

from __future__ import annotations

import torch

from .effects.settings import EffectError
from .media.decode import MediaError
from .media.encode import EncodeError
from .prompts import PromptError
from .weights import CheckpointError

MAX_MESSAGE_CHARS = 300  # of an unexpected error's message shown to people


class TrackError(RuntimeError):
    """A job that cannot run as asked: unknown model or device, an unusable output path. (Bad prompts raise
    PromptError, bad videos MediaError, weights CheckpointError.)"""


class OptionsError(ValueError):
    """Options (a JSON object or command-line flags) that cannot be used: an unknown key, a value out of range;
    the message starts with "invalid options:" and names the option."""


# The input (video, prompts, options, effects, weights, output paths) cannot be used: the message says what to change.
INPUT_ERRORS = (MediaError, PromptError, CheckpointError, TrackError, EncodeError, EffectError, OptionsError)


def first_line(error: BaseException) -> str:
    """The first line of the error's message (at most MAX_MESSAGE_CHARS), or its type's name."""
    return _message_line(error) or type(error).__name__


def describe_error(error: BaseException) -> str:
    """An unexpected error as "Type: first line of its message" (the bare type without a message)."""
    line = _message_line(error)
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _message_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:MAX_MESSAGE_CHARS] if lines else ""


def one_line(error: BaseException) -> str:
    """An input error as one line for people (an OSError as its reason and file)."""
    if isinstance(error, OSError) and error.strerror:
        name = f" {error.filename}" if error.filename else ""
        return f"{error.strerror}{name}"
    text = " ".join(str(error).split())
    return text or error.__class__.__name__


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()
