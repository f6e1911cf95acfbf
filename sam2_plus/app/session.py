"""One browser session (`AppSession`, kept in a gr.State): its video, its objects and their prompts, the
previews, the last results, the frame view, and its folder (`WorkDir`).

Every run starts from all prompts (the service tracks from scratch), so a correction click on an already
tracked frame becomes a conditioning frame of the next run and cannot be overwritten by it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..effects.settings import OBJECT_EFFECTS, Effect
from ..errors import TrackError
from ..media import export
from ..media.decode import FrameSource, VideoInfo
from ..outputs import RecordFile
from ..prompts import PromptError
from ..provider import ModelProvider, shared_models
from ..service import ModelTaskError, TrackRequest, check_model, prepare_request
from .detached import DetachedJob
from .candidates import MaskCandidates
from .editing import BOX, NEGATIVE, POSITIVE, ObjectState, add_click, convert_task, set_box, set_mask, undo
from .errors import AppInputError
from .estimate import describe_estimate
from .jobs import JobResult, RemovedObjects, RenderSettings, counted
from .options import TrackOptions
from .proposals import FoundObjects
from .session_images import ImageTools
from .session_jobs import JobControl
from .session_results import ResultsView
from .session_view import FrameView
from .rerender import SceneChoices, render_settings, tuned
from .settings import AppLimits
from .still import ImageResults
from .workdirs import StopSignal, WorkDir

ENDED = ("This session ended while the page was disconnected, and its files were removed: load the video "
         "again.")  # said by every action on a closed session (its gr.State outlives its files)
NO_VIDEO = "Upload a video or pick an example first."  # also after the video was cleared (its objects wait)


@dataclass(frozen=True)
class Preview:
    options: TrackOptions
    result: export.FrameRecord


@dataclass(eq=False)
class AppSession(ImageTools, JobControl, ResultsView, FrameView):
    """Everything one browser session knows; lives in a gr.State and is cleaned up by close()."""

    files: WorkDir
    video: Path
    info: VideoInfo
    objects: dict[int, ObjectState] = field(default_factory=dict)
    selected: Optional[int] = None
    next_id: int = 1
    corner: Optional[tuple[int, int, float, float]] = None  # first box corner: object, frame, x, y
    previews: dict[tuple[int, int], Preview] = field(default_factory=dict)  # (object, frame) -> preview
    # (object, frame) -> the candidates of its click prompt there, kept while its clicks stay (a pick keeps them)
    candidates: dict[tuple[int, int], MaskCandidates] = field(default_factory=dict)
    found: Optional[FoundObjects] = None  # the last Find objects' proposals not yet made objects
    searched: set[int] = field(default_factory=set)  # frames whose found objects were taken (find_panel.py)
    # found objects the user removed: a job that keeps finding tracks them unseen, so they are not found again
    dismissed: dict[int, ObjectState] = field(default_factory=dict)
    image_results: Optional[ImageResults] = None  # an image's last segmentation (Track on an image)
    results: Optional[JobResult] = None
    jobs: int = 0
    effects: dict[int, Effect] = field(default_factory=dict)  # object -> its effect (OBJECT_EFFECTS)
    scene: SceneChoices = field(default_factory=SceneChoices)  # the page's last background, formats, ...
    job: Optional[DetachedJob] = None  # the last (or running) tracking job started by start_job
    last_options: Optional[TrackOptions] = None  # that job's options (a rejoined page shows them)
    view_frame: int = 0  # the frame the frame view showed last (a rejoined page shows it)
    pages: int = 1  # the pages' gr.States holding this session (a reloaded page rejoins it: `release`)
    cleared: bool = False  # its video was cleared: its files are gone, its objects wait for the next video
    models: ModelProvider = field(default_factory=shared_models, repr=False)  # its previews' and jobs' (the server's)
    _frames: Optional[FrameSource] = field(default=None, repr=False)
    _overlay: Optional[FrameSource] = field(default=None, repr=False)
    _records: Optional[RecordFile] = field(default=None, repr=False)  # the results' records, read once
    _rendering: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held by a re-render

    @classmethod
    def open(cls, video: str | os.PathLike, limits: AppLimits, root: Optional[Path] = None,
             models: Optional[ModelProvider] = None) -> "AppSession":
        """A session for an uploaded video (checked against the limits), with one empty object; its previews and
        jobs run on `models` (default: the process's shared ModelCache)."""
        info = limits.check_video(video)
        files = WorkDir.create("sessions", root)
        own = files.path / f"video{Path(video).suffix.lower()}"
        try:
            os.link(video, own)  # the upload cache may be cleaned before the session ends
        except OSError:
            shutil.copyfile(video, own)
        session = cls(files=files, video=own, info=info, models=models or shared_models())
        session.add_object()
        return session

    @property
    def workdir(self) -> Path:
        return self.files.path

    @property
    def is_image(self) -> bool:
        """A still image: a one-frame session whose results come from the image predictor (`segment_image`)."""
        return self.info.kind == "image"

    @property
    def stop(self) -> StopSignal:
        return self.files.stop

    @property
    def tracking(self) -> bool:
        return self.files.busy

    @property
    def closed(self) -> bool:
        return self.files.closed

    def check_open(self) -> None:
        """AppInputError(ENDED, or NO_VIDEO once cleared) when the files are gone: nothing may reach for them."""
        if self.closed:
            raise AppInputError(NO_VIDEO if self.cleared else ENDED)

    def close(self) -> None:
        """Delete the session's files; during a job: stop it, and close when it ends (end_job)."""
        for source in (self._frames, self._overlay):
            if source is not None:
                source.close()
        self._frames = self._overlay = None
        self.files.close()

    def clear_video(self) -> None:
        """The video's x: the files go (a running job stops), the objects with their prompts and effects stay for
        the next video (`keep_objects_of`)."""
        self.cleared = True
        self.results, self.previews, self.corner, self.candidates, self.found = None, {}, None, {}, None
        self.image_results = None
        self.close()

    def rejoined(self) -> None:
        """One more page holds this session (a reloaded page took it over)."""
        self.pages += 1

    def release(self) -> None:
        """A page's gr.State let go of the session (Gradio drops a closed page's state after an hour): it closes
        when no page holds it any more."""
        self.pages -= 1
        if self.pages <= 0:
            self.close()

    # ------------------------------------------------------------------ objects
    @property
    def current(self) -> ObjectState:
        if self.selected is None or self.selected not in self.objects:
            raise AppInputError("no object is selected: add an object first")
        return self.objects[self.selected]

    def add_object(self, name: str = "") -> ObjectState:
        obj = ObjectState(self.next_id, name.strip() or f"object {self.next_id}")
        self.objects[obj.obj_id] = obj
        self.next_id += 1
        self.selected = obj.obj_id
        self.corner = None
        return obj

    def select(self, obj_id: int) -> ObjectState:
        if obj_id not in self.objects:
            raise AppInputError(f"there is no object {obj_id}")
        self.selected = obj_id
        self.corner = None
        return self.objects[obj_id]

    def rename(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise AppInputError("an object's name cannot be empty")
        self.current.name = name

    def remove_selected(self) -> ObjectState:
        """Remove the selected object; during a job, it is absent from the job's next frames on."""
        obj = self.objects.pop(self.current.obj_id)
        if self.tracking:
            RemovedObjects.of(self.job_dir).add(obj.obj_id)
        elif obj.score is not None and obj.frames():
            self.dismissed[obj.obj_id] = obj
        self._forget_previews(obj.obj_id)
        self.effects.pop(obj.obj_id, None)
        self.selected = next(reversed(self.objects), None) if self.objects else None
        self.corner = None
        return obj

    def keep_objects_of(self, old: "AppSession") -> str:
        """A new video keeps the objects of the one it replaces (names, granularities, effects) and their
        prompts where they still fit: on a frame the new video has, when it has the same size. Returns what was
        kept and dropped, for people ('' when the old video's objects had no prompt: nothing to keep)."""
        prompted = sum(len(obj.frames()) for obj in old.objects.values())
        if not prompted:
            return ""
        same_size = old.info.size == self.info.size
        self.objects = {obj_id: replace(obj, prompts={frame: draft for frame, draft in obj.prompts.items()
                                                      if same_size and frame < self.info.num_frames})
                        for obj_id, obj in old.objects.items()}
        self.selected, self.next_id, self.effects = old.selected, old.next_id, dict(old.effects)
        dropped = prompted - sum(len(obj.frames()) for obj in self.objects.values())
        note = f"Kept the {len(self.objects)} object(s) and {prompted - dropped} of their {prompted} prompted frames"
        if dropped and not same_size:
            note += (f": the prompts are dropped, the video is {self.info.width}x{self.info.height}, not "
                     f"{old.info.width}x{old.info.height}")
        elif dropped:
            note += f": {dropped} on frames past the new video's last ({self.info.num_frames - 1}) are dropped"
        return note + ". Remove or clear them if this is another scene."

    def replacing_question(self) -> str:
        """What to ask before another video replaces this one, saying what goes and what stays ('' when nothing
        would go: no results, no running job and no prompt, or the video was cleared already)."""
        if self.closed:
            return ""
        prompted = sum(len(obj.frames()) for obj in self.objects.values())
        if not prompted and not self._losses():
            return ""
        kept = ""
        if prompted:
            kept = (f"The objects stay; their prompts (on {counted(prompted, 'frame')}) only where the new video has "
                    "the same size and those frames. ")
        return f"Replace the video? {self._losses()}{kept}Cancel keeps everything as it is."

    def clearing_question(self) -> str:
        """What to ask before the video's x clears it ('' when nothing would go: the objects and their prompts
        stay for the next video either way)."""
        if self.closed or not self._losses():
            return ""
        return (f"Clear the video? {self._losses()}The objects and their prompts stay for the next video. Cancel "
                "keeps everything as it is.")

    def _losses(self) -> str:
        losses = []
        if self.results is not None:
            losses.append("The tracking results and downloads go. ")
        if self.tracking:
            losses.append("The running tracking job stops. ")
        return "".join(losses)

    def set_task(self, task: str) -> str:
        obj = self.current
        note = convert_task(obj, task)
        self._forget_previews(obj.obj_id)
        return note

    # ------------------------------------------------------------------ effects and export formats
    def effect_of(self, obj_id: int) -> Effect:
        return self.effects.get(obj_id, Effect())

    def set_effect(self, name: str) -> str:
        """The selected object's effect; its parameters are kept (they come back with their effect)."""
        if name not in OBJECT_EFFECTS:
            raise AppInputError(f"unknown effect {name!r}; choose one of {', '.join(OBJECT_EFFECTS)}")
        obj = self.current
        self.effects[obj.obj_id] = replace(self.effect_of(obj.obj_id), name=name)
        return f"{obj.name}: effect {name}."

    def set_effect_parameter(self, parameter: str, value) -> str:
        """One parameter of the selected object's effect (strength, block, color, thickness), checked."""
        obj = self.current
        self.effects[obj.obj_id] = tuned(self.effect_of(obj.obj_id), parameter, value, obj.name)
        return ""

    def render_settings(self, scene: Optional[SceneChoices] = None,
                        obj_ids: Optional[list[int]] = None) -> RenderSettings:
        """What a run of `obj_ids` (default: every object) writes with `scene` (default: the last one the page
        gave) and the objects' effects."""
        obj_ids = list(self.objects) if obj_ids is None else obj_ids
        return render_settings(self.effects, self.scene if scene is None else scene, obj_ids)

    # ------------------------------------------------------------------ prompts
    def check_frame(self, frame: int) -> int:
        frame = int(frame)
        if not 0 <= frame < self.info.num_frames:
            raise AppInputError(f"frame {frame} is outside the video (0..{self.info.num_frames - 1})")
        return frame

    def check_point(self, x: float, y: float) -> tuple[float, float]:
        if not (0 <= x <= self.info.width and 0 <= y <= self.info.height):
            raise AppInputError(f"({x:g}, {y:g}) is outside the {self.info.width}x{self.info.height} frame")
        return float(x), float(y)

    def click_view(self, tool: str, frame: int, x: float, y: float) -> str:
        """A click at pixel (x, y) of the frame view (see view_scale); with the click tools, on a frame where
        Find objects' proposals show, it takes the proposal under it."""
        x, y = x / self.view_scale, y / self.view_scale
        if tool in (POSITIVE, NEGATIVE) and self.found is not None and self.found.frame == frame \
                and self.found.proposals:
            return self.adopt_proposal_at(frame, x, y)
        return self.click(tool, frame, x, y)

    def click(self, tool: str, frame: int, x: float, y: float) -> str:
        """A click at video pixel (x, y) with a tool; returns a note for people."""
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame, (x, y) = self.check_frame(frame), self.check_point(x, y)
        obj = self.current
        if tool in (POSITIVE, NEGATIVE):
            self.corner = None
            note = add_click(obj, frame, x, y, tool == POSITIVE)
        elif tool == BOX:
            if self.corner is None or self.corner[:2] != (obj.obj_id, frame):
                self.corner = (obj.obj_id, frame, x, y)
                return "first corner set: click the opposite corner"
            first = self.corner
            self.corner = None
            note = set_box(obj, frame, (first[2], first[3], x, y))
        else:
            raise AppInputError(f"the '{tool}' tool does not take clicks on the frame: use the editor below it")
        self._edited(obj.obj_id, frame)
        return note

    def apply_mask(self, frame: int, mask: np.ndarray) -> str:
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame, obj = self.check_frame(frame), self.current
        if mask.shape != self.info.size:
            raise AppInputError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the video {self.info.width}x"
                                f"{self.info.height}")
        note = set_mask(obj, frame, mask)
        self.corner = None
        self._edited(obj.obj_id, frame)
        return note

    def undo(self, frame: int) -> None:
        frame, obj = self.check_frame(frame), self.current
        if self.corner is not None and self.corner[:2] == (obj.obj_id, frame):
            self.corner = None
            return
        picked = frame in obj.picks
        undo(obj, frame)
        if picked:  # back to the clicks, whose candidates stay
            self.previews.pop((obj.obj_id, frame), None)
        else:
            self._edited(obj.obj_id, frame)

    def clear_frame(self, frame: int) -> None:
        frame, obj = self.check_frame(frame), self.current
        obj.prompts.pop(frame, None)
        obj.picks.pop(frame, None)
        self.corner = None
        self._edited(obj.obj_id, frame)

    def _edited(self, obj_id: int, frame: int) -> None:
        self.previews.pop((obj_id, frame), None)
        self.candidates.pop((obj_id, frame), None)

    def _forget_previews(self, obj_id: int) -> None:
        self.previews = {key: p for key, p in self.previews.items() if key[0] != obj_id}
        self.candidates = {key: c for key, c in self.candidates.items() if key[0] != obj_id}

    # ------------------------------------------------------------------ JSON and previews
    def prompts_document(self, finding: bool = False) -> dict:
        """The prompts JSON (sam2_plus/prompts.py) of every object, as a dict; checked where a job is planned.
        `finding`: the job finds objects by itself, so it may have none, and objects without a prompt (the
        placeholder a session starts with) are left out."""
        if finding:
            kept = [obj for obj in self.objects.values() if obj.frames()]
            return {"objects": [obj.to_json() for obj in kept + self.hidden_objects()]}
        if not self.objects:
            raise AppInputError("there is nothing to track: add an object and give it a click, a box or a mask")
        return {"objects": [obj.to_json() for obj in self.objects.values()]}

    def prompts_json(self) -> str:
        return json.dumps(self.prompts_document())

    def preview_target(self, frame: int, options: TrackOptions) -> Optional[tuple[int, int]]:
        """(object, frame) when the selected object has a prompt on `frame` without an up-to-date preview."""
        return None if self.selected is None else self.preview_target_of(self.selected, frame, options)

    def preview_target_of(self, obj_id: int, frame: int, options: TrackOptions) -> Optional[tuple[int, int]]:
        """(object, frame) when object `obj_id` has a prompt on `frame` without an up-to-date preview."""
        obj = self.objects.get(obj_id)
        if obj is None or frame not in obj.frames():
            return None
        preview = self.previews.get((obj.obj_id, frame))
        return None if preview is not None and preview.options == options else (obj.obj_id, frame)

    def preview_json(self, obj_id: int, frame: int) -> str:
        """The prompts JSON of one object's prompt on one frame (the preview's input)."""
        obj = self.objects[obj_id]
        prompt = obj.prompts[frame].to_json()
        return json.dumps({"objects": [{"id": obj_id, "task": obj.task, "prompts": [prompt]}]})

    def preview_request(self, obj_id: int, frame: int, options: TrackOptions) -> TrackRequest:
        """The checked request of a preview (with the video as it was checked when the session opened)."""
        self.check_open()
        with self.granularity_words():
            return prepare_request(self.video, self.preview_json(obj_id, frame), model=options.model,
                                   motion_aware=options.motion_aware, info=self.info)

    def store_preview(self, obj_id: int, frame: int, options: TrackOptions, result: export.FrameRecord,
                      candidates: Optional[MaskCandidates] = None) -> None:
        """A preview, and the candidates of the click prompt it came from (kept until the clicks change)."""
        if obj_id in self.objects and frame in self.objects[obj_id].frames():
            self.previews[(obj_id, frame)] = Preview(options, result)
            if candidates is not None:
                self.candidates[(obj_id, frame)] = candidates

    def model_note(self, model: str) -> str:
        """'' when `model` can track every object at its granularity; else what stops it, for people."""
        try:
            with self.granularity_words():
                check_model(model, {obj.obj_id: obj.task for obj in self.objects.values()})
        except (AppInputError, PromptError, TrackError) as error:
            return f"⚠️ {error}"
        return ""

    @contextmanager
    def granularity_words(self) -> Iterator[None]:
        """A model that cannot track an object's task, said in the page's words (granularity, the object's name;
        the prompts JSON and the API say "task")."""
        try:
            yield
        except ModelTaskError as error:
            obj = self.objects.get(error.obj_id)
            name = f"{obj.name} (id {error.obj_id})" if obj is not None else f"object {error.obj_id}"
            takes = " and ".join(error.supported)
            raise AppInputError(f"{name} has the {error.task} granularity, which {error.model} cannot track (it "
                                f"takes the {takes} granularity only): choose sam2++, or give {name} the "
                                f"{error.supported[0]} granularity") from None

    def estimate(self, model: str) -> str:
        """Track's time with `model` on this machine for this video and its objects ('' without objects, and on
        an image, which is segmented by previews)."""
        if not self.objects or self.is_image:
            return ""
        prompted = {frame for obj in self.objects.values() for frame in obj.frames()}
        return describe_estimate(model, self.info.num_frames, len(self.objects), max(1, len(prompted)))
