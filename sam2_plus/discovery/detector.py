"""Text mode's open-vocabulary detector: boxes of the given phrases on one image, through transformers'
`zero-shot-object-detection` pipeline (Grounding DINO, MM Grounding DINO, OWLv2, OWL-ViT checkpoints).

    detector = load_detector("IDEA-Research/grounding-dino-tiny", "cuda")   # or a local model folder
    detections = detector.detect(frame, ("person", "red car"), threshold=0.3)  # best first

The pipeline (transformers 5.x) gives the model each phrase as a text of its own and names each box by that
phrase; the phrases of one call go through the model as one batch. Weights come from the Hugging Face Hub cache
(downloaded when missing and the Hub answers); without them `DetectorUnavailable` says what to download.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from ..weights import CheckpointError, _unreachable_reason
from .found import Detection


@runtime_checkable
class TextDetector(Protocol):
    """Boxes of `phrases` on an RGB image ([H, W, 3] uint8), each labelled with one of the phrases exactly,
    scored at least `threshold`, best first."""

    def detect(self, image: np.ndarray, phrases: Sequence[str], threshold: float) -> list[Detection]: ...


class DetectorUnavailable(CheckpointError):
    """A detector checkpoint that cannot be had or loaded here; the message names it and what to do."""


class PipelineDetector:
    """A `TextDetector` over a loaded zero-shot-object-detection pipeline, on the pipeline's device."""

    def __init__(self, pipe: Any, checkpoint: str) -> None:
        self.pipe = pipe
        self.checkpoint = checkpoint

    @property
    def device(self) -> Any:
        return self.pipe.device

    def detect(self, image: np.ndarray, phrases: Sequence[str], threshold: float) -> list[Detection]:
        from PIL import Image

        phrases = list(dict.fromkeys(phrases))
        if not phrases:
            return []
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            raise ValueError("detect: the image must be an [H, W, 3] uint8 RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        # one batch of all phrases: a single forward pass of the model per call
        raw = self.pipe(Image.fromarray(image), candidate_labels=phrases, threshold=float(threshold),
                        batch_size=len(phrases))
        return detections_from(raw, phrases, float(threshold), image.shape[:2])


def detections_from(raw: Sequence[dict], phrases: Sequence[str], threshold: float,
                    size: tuple[int, int]) -> list[Detection]:
    """The pipeline's boxes as Detections: labels mapped to the phrases (`phrase_of`; others dropped), boxes
    clipped to the image (empty ones dropped), scores below `threshold` dropped; best first."""
    height, width = size
    found = []
    for entry in raw:
        phrase = phrase_of(str(entry.get("label", "")), phrases)
        score = float(entry["score"])
        if phrase is None or score < threshold:
            continue
        box = entry["box"]
        x1, x2 = (min(max(float(box[k]), 0.0), float(width)) for k in ("xmin", "xmax"))
        y1, y2 = (min(max(float(box[k]), 0.0), float(height)) for k in ("ymin", "ymax"))
        if x2 > x1 and y2 > y1:
            found.append(Detection((x1, y1, x2, y2), score, phrase))
    return sorted(found, key=lambda d: d.score, reverse=True)


def phrase_of(label: str, phrases: Sequence[str]) -> Optional[str]:
    """The phrase a detector's label text stands for, or None. Case, spaces and periods do not count. The rule,
    in order: the phrase equal to the label; the first phrase (in the given order) the label is a run of words
    of ("car" of "red car", a sub-span of the prompt); the phrase that begins first in the label among those
    that are a run of its words ("person red car" of "person" and "red car", phrases joined)."""
    words = _words(label)
    if not words:
        return None
    keyed = [(phrase, _words(phrase)) for phrase in phrases]
    for phrase, phrase_words in keyed:
        if phrase_words == words:
            return phrase
    for phrase, phrase_words in keyed:
        if _run_at(words, phrase_words) is not None:
            return phrase
    starts = [(start, -len(phrase_words), index) for index, (_, phrase_words) in enumerate(keyed)
              if phrase_words and (start := _run_at(phrase_words, words)) is not None]
    return keyed[min(starts)[2]][0] if starts else None


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.lower().replace(".", " ").split())


def _run_at(run: tuple[str, ...], words: tuple[str, ...]) -> Optional[int]:
    """Where `run` first occurs as consecutive words of `words`, or None."""
    for start in range(len(words) - len(run) + 1):
        if words[start:start + len(run)] == run:
            return start
    return None


def load_detector(checkpoint: str, device: Any) -> PipelineDetector:
    """The detector of a Hub repository id or a local model folder, on `device` ("cpu", "cuda", ...).
    DetectorUnavailable when its weights cannot be had (at once, without the hub client's retries, when the Hub
    is unreachable or HF_HUB_OFFLINE is set) or the pipeline cannot run it."""
    folder = detector_folder(checkpoint)
    try:
        from transformers import pipeline

        pipe = pipeline("zero-shot-object-detection", model=folder, device=device)
    except Exception as e:  # a folder without a model, a model of another task, a missing library
        raise DetectorUnavailable(f"cannot load the detector {checkpoint} ({e.__class__.__name__}: "
                                  f"{_first_line(e)}); choose a checkpoint that transformers' "
                                  "zero-shot-object-detection pipeline serves, e.g. IDEA-Research/grounding-dino-tiny"
                                  ) from None
    if "input_ids" not in inspect.signature(pipe.model.forward).parameters:
        # the pipeline feeds every model tokenized phrases as input_ids (OmDet-Turbo takes other inputs)
        raise DetectorUnavailable(f"the detector {checkpoint} ({pipe.model.config.model_type}) cannot run in "
                                  "transformers' zero-shot-object-detection pipeline, which gives the model "
                                  "input_ids; choose Grounding DINO or OWLv2, e.g. IDEA-Research/grounding-dino-tiny")
    return PipelineDetector(pipe, checkpoint)


def detector_folder(checkpoint: str) -> str:
    """A local model folder as it is, or the Hub repository's snapshot in the Hugging Face cache (downloaded
    when missing; honours HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT)."""
    local = Path(checkpoint).expanduser()
    if local.is_dir():
        return str(local)
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(checkpoint)
    except ImportError:
        raise _unavailable(checkpoint, "huggingface_hub is not installed, so it cannot be downloaded.") from None
    except Exception:
        raise DetectorUnavailable(f"the detector {checkpoint!r} is neither a model folder nor a Hugging Face Hub "
                                  "repository id (owner/name), e.g. IDEA-Research/grounding-dino-tiny") from None
    try:
        return snapshot_download(checkpoint, local_files_only=True)
    except Exception:  # not in the cache
        pass
    if constants.HF_HUB_OFFLINE:
        raise _unavailable(checkpoint, "it is not in the Hugging Face cache and HF_HUB_OFFLINE is set.")
    unreachable = _unreachable_reason(constants.ENDPOINT)
    if unreachable:
        raise _unavailable(checkpoint, f"it is not in the Hugging Face cache and {constants.ENDPOINT} cannot be "
                                       f"reached ({unreachable}).")
    try:
        return snapshot_download(checkpoint, etag_timeout=5)
    except Exception as e:
        raise _unavailable(checkpoint, f"downloading it from the Hugging Face Hub failed ({e.__class__.__name__}: "
                                       f"{_first_line(e)[:200]}).") from None


def _unavailable(repo: str, problem: str) -> DetectorUnavailable:
    fix = (f"Download it on a machine with the Hub (`hf download {repo}`; `huggingface-cli download {repo}` with an "
           "older huggingface_hub) into the Hugging Face cache and use that cache here (HF_HOME), with "
           "HF_HUB_OFFLINE=1 to use the cached copy without network; or give a local folder of the model as the "
           "detector; or choose another detector")
    return DetectorUnavailable(f"The text detector {repo} is unavailable: {problem} {fix} (find's 'detector').",
                               f"The text detector {repo} is unavailable: {problem} {fix} in the Find panel; then "
                               "run again.")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
