"""A run's files made again from its stored results, without the model: when the effects or the export formats
change after tracking, `rerender` feeds the run's records (`outputs.RecordFile`, written by every job) to the
same writers as a job (`service.open_outputs`, sam2_plus/effects) in a new folder, so the effect video, the
cut-outs and the results ZIP are what a job with those settings writes. The overlay, the results JSON and the
records do not depend on them: they are linked from the run's folder.

Also the page's choices the settings come from: each object's `Effect` (checked one parameter at a time,
`tuned`), the choices for the whole frame (`SceneChoices`: the background, feather, cut-out and export formats)
and the cut-out preview (`cutout_preview`: a frame of the cut-out on a checkerboard)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..effects.render import EffectRenderer
from ..effects.settings import (
    BACKGROUND_EFFECTS, DEFAULT_CUTOUT, OBJECT_EFFECTS, PARAMETERS, Effect, EffectError, EffectSettings,
    parse_cutout, parse_effect, parse_number,
)
from ..exports import ExportError, ExportFormatError, check_export_formats
from ..media.decode import FrameSource
from ..media.export import FrameRecord
from ..outputs import RecordFile
from ..review import ReviewTracker
from ..service import open_outputs
from .errors import AppInputError
from .jobs import (
    OUTPUT_NAMES, JobFiles, JobResult, RenderSettings, bar_html, format_seconds, job_outputs, progress_html,
)

PARAMETER_NAMES = {"strength": "blur strength", "block": "pixel block", "color": "colour", "thickness": "thickness",
                   "dim": "brightness outside"}  # the page's words for Effect's parameters
CHECKER_CELL = 8  # pixels of a checkerboard square behind the cut-out preview
CHECKER_GREYS = (204, 153)
PREVIEW_SIDE = 480  # a smaller video's cut-out preview is enlarged by a whole factor up to about this


class RerenderError(AppInputError):
    """A re-render that cannot run: no stored results, or settings the run's objects cannot take."""


# --------------------------------------------------------------------------- the page's choices


@dataclass(frozen=True)
class SceneChoices:
    """The choices for the whole frame: the background's effect, the soft edges, the cut-out formats (when the
    background is erased) and the export formats added to the results ZIP."""

    background: Effect = Effect()
    feather: float = 0.0
    cutout: tuple[str, ...] = DEFAULT_CUTOUT
    export_formats: tuple[str, ...] = ()


def parse_scene(background: str, strength: float, color: Optional[str], dim: float, feather: float,
                cutout: Sequence[str], export_formats: Sequence[str]) -> SceneChoices:
    """The page's values as SceneChoices; AppInputError names the setting and what it takes. Only the
    parameters of the chosen background effect are read (the others are hidden on the page)."""
    values = {"strength": strength, "color": color, "dim": dim}
    spec = {"effect": background, **{name: values[name] for name in PARAMETERS.get(background, ())}}
    try:
        effect = parse_effect(spec, BACKGROUND_EFFECTS, "Background effect", member=": ")
        soft = parse_number(feather, "feather", "Feather")
        formats = check_export_formats(list(export_formats), ())
        cutout = parse_cutout(list(cutout))
    except (EffectError, ExportFormatError) as error:
        raise AppInputError(str(error)) from None
    return SceneChoices(effect, float(soft), cutout, formats)


def tuned(effect: Effect, parameter: str, value: Any, owner: str) -> Effect:
    """`effect` with one parameter changed, checked (AppInputError names `owner`'s effect and the parameter).
    The other parameters are kept, also those its effect does not take (they come back with their effect)."""
    if parameter not in PARAMETERS[effect.name]:
        takes = ", ".join(PARAMETER_NAMES[p] for p in PARAMETERS[effect.name]) or "no parameters"
        raise AppInputError(f"{owner}'s effect {effect.name} takes {takes}, not a {PARAMETER_NAMES[parameter]}")
    try:
        checked = parse_effect({"effect": effect.name, parameter: value}, OBJECT_EFFECTS, f"{owner}'s {effect.name}",
                               member=" ")
    except EffectError as error:
        raise AppInputError(str(error)) from None
    return replace(effect, **{parameter: getattr(checked, parameter)})


def as_rendered(effect: Effect) -> Effect:
    """The effect as it renders: the parameters its effect does not take at their defaults (equal settings,
    equal files)."""
    return replace(Effect(effect.name), **{name: getattr(effect, name) for name in PARAMETERS[effect.name]})


def render_settings(effects: Mapping[int, Effect], scene: SceneChoices, obj_ids: Iterable[int]) -> RenderSettings:
    """What a run of the objects `obj_ids` writes with these choices: every object chosen with its effect
    (none when it has none), and no effect outputs at all when neither an object nor the background has one."""
    chosen = tuple((obj_id, as_rendered(effects.get(obj_id, Effect()))) for obj_id in obj_ids)
    if scene.background.is_none and all(effect.is_none for _, effect in chosen):
        return RenderSettings(None, scene.export_formats)
    return RenderSettings(EffectSettings(chosen, as_rendered(scene.background), scene.feather, None, scene.cutout),
                          scene.export_formats)


# --------------------------------------------------------------------------- the re-render


@dataclass(frozen=True)
class RerenderUpdate:
    frames_done: int
    frames_total: int
    elapsed: float
    result: Optional[JobResult] = None  # at the end: the run's result with the new files

    def html(self) -> str:
        """The progress bar and its line, for people."""
        if self.result is None:
            percent = 100 * self.frames_done / max(1, self.frames_total)
            text = f"Re-rendering: {self.frames_done} / {self.frames_total} frames ({percent:.0f} %)"
            return bar_html(self.frames_done, self.frames_total) + progress_html(text)
        took = format_seconds(self.elapsed) if self.elapsed >= 1 else f"{self.elapsed:.1f} s"
        return progress_html(f"Re-rendered {self.frames_total} frames in {took} from the stored masks (the model "
                             "was not used).")


def check_rerender(records: RecordFile, settings: RenderSettings) -> None:
    """RerenderError when the run's objects cannot take `settings` (an export format's limits)."""
    try:
        check_export_formats(settings.export_formats, records.tasks)
        if settings.effects is not None:
            settings.effects.check_objects(records.tasks)
    except (ExportError, ExportFormatError, EffectError) as error:
        raise RerenderError(str(error)) from None


def rerender(result: JobResult, records: RecordFile, video: str | os.PathLike, job_dir: str | os.PathLike,
             settings: RenderSettings, should_stop: Callable[[], bool] = lambda: False) -> Iterator[RerenderUpdate]:
    """Write the files of `result`'s run with `settings` into the empty folder `job_dir`, from its `records`,
    and yield the progress after each frame; the last update holds the run's result with the new files. When
    `should_stop()` says so between frames, the files are closed and nothing more is yielded (the caller
    discards the folder)."""
    check_rerender(records, settings)
    started = time.perf_counter()
    folder = Path(job_dir)
    outputs = replace(job_outputs(folder, settings.export_formats, settings.effects), overlay=None,
                      results_json=None, records=None)
    total, done = len(records), 0
    with FrameSource(video) as frames:
        if frames.info.num_frames != records.num_frames:
            raise RerenderError(f"the video has {frames.info.num_frames} frames, its stored results "
                                f"{records.num_frames}: track again")
        files = result.files
        kept = {name: _linked(path, folder / OUTPUT_NAMES[name]) for name, path in
                (("overlay", files.overlay), ("json", files.results_json), ("records", files.records))}
        with open_outputs(outputs, frames, records.tasks, ReviewTracker(records.tasks), records.object_fields) as sink:
            for record in records:
                if should_stop():
                    return
                sink.write(record)
                done += 1
                yield RerenderUpdate(done, total, time.perf_counter() - started)
    written = {name: path for name, path in outputs.paths().items() if path.exists()}
    new_files = JobFiles(kept["overlay"], outputs.export, kept["json"], written.get("effect"),
                         tuple(written[name] for name in ("cutout_webm", "cutout_mov") if name in written),
                         kept["records"])
    yield RerenderUpdate(done, total, time.perf_counter() - started,
                         replace(result, files=new_files, rendered=settings))


def _linked(source: Optional[Path], target: Path) -> Optional[Path]:
    """`source` hard-linked (or copied) as `target`; None stays None."""
    if source is None:
        return None
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


# --------------------------------------------------------------------------- the cut-out preview


def cutout_preview(frame: np.ndarray, record: FrameRecord, effects: EffectSettings,
                   tasks: Mapping[int, str]) -> np.ndarray:
    """The cut-out of one frame (the effect frame with the chosen objects' alpha) over a checkerboard, where
    it is transparent; smaller videos enlarged by a whole factor."""
    rgba = EffectRenderer(effects, tasks, with_alpha=True).compose(frame, record).rgba()
    scale = max(1, PREVIEW_SIDE // max(rgba.shape[:2]))
    if scale > 1:
        rgba = np.repeat(np.repeat(rgba, scale, axis=0), scale, axis=1)
    height, width = rgba.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    checker = np.where((yy // CHECKER_CELL + xx // CHECKER_CELL) % 2 == 0, *CHECKER_GREYS).astype(np.float32)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    shown = rgba[..., :3].astype(np.float32) * alpha + checker[..., None] * (1 - alpha)
    return np.rint(shown).astype(np.uint8)
