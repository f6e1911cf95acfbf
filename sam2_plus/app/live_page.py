"""Live sessions as the app opens them: checked (the model, the weights), in a work folder of their own that goes
with their client, on one of the app's GPU slots for their whole length; and the scripted endpoint's side
(`/live_frame`: a frame with prompts in the prompts JSON, answered with its drawn picture and the status JSON).

The GPU function (app.py's `gpu_live`, `spaces.GPU` with `gpu_time.live_gpu_seconds`) runs the whole session:
off ZeroGPU in this process, holding a slot and lending it to previews between frames like a tracking job; on
ZeroGPU as one call in a worker, whose inbox is the session's folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

import numpy as np

from ..media.decode import VideoInfo
from ..prompts import parse_prompts
from ..provider import ModelProvider
from ..service import check_model, check_weights
from ..weights import weights_from_env
from .errors import AppInputError
from .gpu_slots import GpuSlots
from .gpu_time import live_gpu_seconds
from .hardware import on_zero_gpu
from .live import LiveSpec, LiveUpdate
from .live_session import LiveSession
from .settings import AppLimits
from .workdirs import SessionFiles, WorkDir

GpuLive = Callable[..., Iterator[LiveUpdate]]  # (spec, models, between_steps) -> the session's updates
API_FRAME_SECONDS = 60.0  # the longest /live_frame waits for its frame's result (the first loads the model)


def open_live(model: str, limits: AppLimits, slots: GpuSlots, models: ModelProvider, gpu_live: GpuLive,
              session_files: SessionFiles, session_hash: Optional[str]) -> LiveSession:
    """A checked live session of `model` for the client `session_hash`, started (its loop waits for a GPU slot)."""
    weights = weights_from_env()
    check_weights(weights)
    name = check_model(model, {})
    folder = WorkDir.create("live")
    spec = LiveSpec(folder.path, name, weights, max_frames=limits.live_frames, max_seconds=limits.live_seconds)
    folder.begin_job()  # closing the folder (the client gone) stops the loop first (its stop file is the inbox's)

    def run(checked: LiveSpec, on_wait: Callable[[int], None]) -> Iterator[LiveUpdate]:
        try:
            with slots.held(on_wait) as lender:
                yield from gpu_live(checked, models, lender if slots.lending else None)
        finally:
            folder.end_job()

    session = LiveSession(spec, run)
    session_files.add(session_hash, folder.close)
    return session


def live_cost(limits: AppLimits, zero_gpu: Optional[bool] = None) -> str:
    """What a live session costs on this hardware, for the page."""
    seconds = live_gpu_seconds(limits.live_seconds, limits.live_frames)
    if on_zero_gpu() if zero_gpu is None else zero_gpu:
        return (f"On this ZeroGPU Space a live session is one GPU call that asks for {seconds} s of your GPU quota "
                f"(its {limits.live_seconds:g} s, the GPU's start and writing the files); Stop ends it early.")
    return ("A live session holds one of the app's GPU slots while it runs (previews still get their turn between "
            "its frames; tracking jobs wait for it).")


def api_frame(session: LiveSession, image: Any, prompts: str) -> np.ndarray:
    """/live_frame: the frame sent, then the prompts on it (the prompts JSON, every prompt's frame the frame's own
    index), answered once its result (with the prompts') is drawn."""
    image = session.checked(image)
    frame = session.stats().sent  # the index the frame gets in the stream
    parsed = []
    if prompts.strip():
        height, width = image.shape[:2]
        info = VideoInfo("arrays", frame + 1, 30.0, width, height, (frame + 1) / 30.0)
        parsed = parse_prompts(prompts, info)
        late = [(obj.obj_id, p.frame) for obj in parsed for p in obj.prompts if p.frame != frame]
        if late:
            raise AppInputError(f"object {late[0][0]}: a prompt sent with frame {frame} must be on frame {frame}, "
                                f"not {late[0][1]}")
    number = session.send_frame(image)
    if number == 0:
        raise AppInputError(f"the live session has ended ({session.ended}); call /live_stop for its files")
    for obj in parsed:
        for prompt in obj.prompts:
            session.track_object(obj.obj_id, obj.task)
            session.send_prompt(obj.obj_id, obj.task, prompt)
    if not session.wait_for(number, API_FRAME_SECONDS):
        raise AppInputError(f"frame {frame} got no result within {API_FRAME_SECONDS:g} s: {session.describe()}")
    if parsed and session.note.startswith("⚠️"):
        raise AppInputError(session.note.removeprefix("⚠️ "))
    return session.view()


def api_status(session: LiveSession) -> dict[str, Any]:
    """The status JSON of /live_frame: the newest frame, the counts and rates, the objects, the last note."""
    stats = session.stats()
    return {"frame": stats.frame_idx, "sent": stats.sent, "processed": stats.processed,
            "frames_per_second": round(stats.processed_rate, 2),
            "latency_ms": None if stats.latency is None else round(stats.latency * 1000, 1),
            "objects": {str(obj_id): obj.task for obj_id, obj in session.objects.items()},
            "note": session.note, "ended": session.ended}
