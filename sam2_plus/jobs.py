"""A job as one typed, picklable value (`JobSpec`): what the app checks where a job enters and hands, whole, to
its GPU function (on ZeroGPU pickled to another process), and what that function's runner reads.

    spec = JobSpec("track", request, export_formats=("coco",)).in_folder(job_dir, stop_file)

Its `mode` says what the job does and which checked request it holds: "track" (a `TrackRequest`: its objects
through its video), "segment_image" (a `sam2_plus.segment.SegmentRequest`: its objects' prompts on a still image)
"find_objects" (a `sam2_plus.segment.FindRequest`: automatic masks on one frame, no objects) or "find_frame" (the
page's Find: a `sam2_plus.app.find_panel.FrameFindRequest`, a tracking job's finder on one frame). The app's runners
are one table keyed by mode (`sam2_plus/app/jobs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional, Protocol, get_args

from .discovery.settings import DiscoverySettings
from .effects.settings import EffectSettings
from .media.decode import VideoInfo
from .prompts import ObjectPrompts
from .weights import WeightsSource

JobMode = Literal["track", "segment_image", "find_objects", "find_frame"]
JOB_MODES: tuple[str, ...] = get_args(JobMode)
MODES_WITHOUT_OBJECTS = ("find_objects", "find_frame")  # the others take the objects' prompts


class JobRequest(Protocol):
    """What every checked request has: the model that runs it, with its weights, on its device."""

    @property
    def model(self) -> str: ...

    @property
    def weights(self) -> WeightsSource: ...

    @property
    def device(self) -> Optional[str]: ...


@dataclass(frozen=True)
class TrackRequest:
    """What to track, checked (`service.prepare_request` makes one): a video and what it holds, its objects
    (parsed prompts, checked against it), the model and options."""

    video: Path
    info: VideoInfo  # the video as tracked (max_frames applied)
    objects: tuple[ObjectPrompts, ...]
    model: str  # canonical name, with every object's task
    weights: WeightsSource
    device: Optional[str] = None  # None: CUDA when available, else the CPU
    motion_aware: bool = False
    max_frames: Optional[int] = None  # track only the first max_frames frames of the video
    discovery: Optional[DiscoverySettings] = None  # objects the job finds by itself (it may then have no objects)

    @property
    def tasks(self) -> dict[int, str]:
        return {obj.obj_id: obj.task for obj in self.objects}


@dataclass(frozen=True)
class JobSpec:
    """One checked job: its mode, its request (source, model, weights, device; the objects' prompts, none for
    find_objects), the options its outputs need, and the folder its files go to with its Stop file."""

    mode: JobMode
    request: JobRequest  # a TrackRequest for "track"; sam2_plus.segment's SegmentRequest / FindRequest
    export_formats: tuple[str, ...] = ()  # tools' formats in the results ZIP (checked by the plan)
    effects: Optional[EffectSettings] = None  # the effect video and cut-outs (checked by the plan)
    job_dir: Optional[str] = None  # where the job writes its files (`in_folder`)
    stop_file: Optional[str] = None  # the job ends at its next frame once this file exists

    def __post_init__(self) -> None:
        if self.mode not in JOB_MODES:
            raise ValueError(f"unknown job mode {self.mode!r}; one of {', '.join(JOB_MODES)}")
        finds = getattr(self.request, "discovery", None) is not None
        if self.mode not in MODES_WITHOUT_OBJECTS and not finds and not getattr(self.request, "objects", ()):
            raise ValueError(f"a {self.mode} job needs at least one object, or objects to find")

    def in_folder(self, job_dir: str | Path, stop_file: Optional[str | Path] = None) -> "JobSpec":
        """This job writing into `job_dir`, stopped by `stop_file`."""
        return replace(self, job_dir=str(job_dir), stop_file=None if stop_file is None else str(stop_file))

    def folder(self) -> Path:
        """The job's folder; ValueError for a spec not placed in one (`in_folder`)."""
        if self.job_dir is None:
            raise ValueError(f"the {self.mode} job has no folder for its files: place it with in_folder()")
        return Path(self.job_dir)
