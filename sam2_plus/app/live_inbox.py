"""What the page sends a live session's model loop: the newest camera frame, the prompts and Stop, as files in the
session's folder, so that the loop may run in another process (a ZeroGPU worker) as well as in a thread.

The frame is one file replaced on each arrival (an atomic rename): a frame that arrives while the model is busy
replaces the one waiting, so the loop always takes the newest frame and the late ones are dropped. Prompts are
files numbered in the order given, each taken once.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..prompt_rules import FramePrompt
from .workdirs import StopSignal

POLL_SECONDS = 0.005  # how often the loop looks for a new frame or prompt while it has none


@dataclass(frozen=True)
class LiveFrame:
    """A camera frame as it arrived: its number among the frames sent (from 1), and when (time.time())."""

    number: int
    image: np.ndarray  # HxWx3 uint8 RGB
    arrived: float


@dataclass(frozen=True)
class LivePrompt:
    """A prompt on a pushed frame: `prompt` (None: remove the object) for object `obj_id` of `task`."""

    obj_id: int
    task: str
    prompt: Optional[FramePrompt]


@dataclass(frozen=True)
class LiveWork:
    """What the loop takes at once: the newest frame (if any) and the prompts given since it last looked."""

    prompts: tuple[LivePrompt, ...]
    frame: Optional[LiveFrame]


class LiveInbox:
    """The folder's mailbox (module doc). The page writes (`put_frame`, `put_prompt`, `stop`); the loop takes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        (self.folder / "prompts").mkdir(parents=True, exist_ok=True)
        self._stop = StopSignal(self.folder / "stop")
        self._prompts_given = len(list((self.folder / "prompts").iterdir()))
        self._prompts_taken = 0
        self._frame_taken = 0

    @property
    def _frame_path(self) -> Path:
        return self.folder / "frame.npz"

    def put_frame(self, frame: LiveFrame) -> None:
        part = self.folder / f"frame-{frame.number}.part"
        with open(part, "wb") as file:
            np.savez(file, image=frame.image, number=frame.number, arrived=frame.arrived)
        os.replace(part, self._frame_path)

    def put_prompt(self, prompt: LivePrompt) -> None:
        self._prompts_given += 1
        part = self.folder / "prompts" / f"{self._prompts_given:08d}.part"
        part.write_bytes(pickle.dumps(prompt))
        os.replace(part, part.with_suffix(".pkl"))

    def stop(self) -> None:
        self._stop.set()

    def stopped(self) -> bool:
        return self._stop.is_set()

    def take(self, timeout: float) -> LiveWork:
        """The prompts given since the last take and the newest frame not taken yet; waits up to `timeout`
        seconds for either (or Stop)."""
        deadline = time.monotonic() + timeout
        while True:
            work = LiveWork(self._take_prompts(), self._take_frame())
            if work.prompts or work.frame is not None or self.stopped() or time.monotonic() >= deadline:
                return work
            time.sleep(POLL_SECONDS)

    def _take_prompts(self) -> tuple[LivePrompt, ...]:
        taken = []
        while (path := self.folder / "prompts" / f"{self._prompts_taken + 1:08d}.pkl").exists():
            taken.append(pickle.loads(path.read_bytes()))
            self._prompts_taken += 1
        return tuple(taken)

    def _take_frame(self) -> Optional[LiveFrame]:
        try:
            with np.load(self._frame_path, allow_pickle=False) as data:
                number = int(data["number"])
                if number <= self._frame_taken:
                    return None
                frame = LiveFrame(number, data["image"], float(data["arrived"]))
        except FileNotFoundError:
            return None
        self._frame_taken = number
        return frame
