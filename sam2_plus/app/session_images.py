"""The image half of a page's session (`AppSession` inherits it): the candidates of a click prompt and a pick
among them, Find objects' proposals made objects (and the objects a tracking job found, `take_found`), and an
image's segmentation from its previews. It works on the
session's objects, previews and frames (session.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from ..discovery.coverage import decide
from ..discovery.found import Found
from ..discovery.settings import DiscoverySettings
from ..segment import StillImage
from .candidates import thumbnails
from .editing import ObjectState, pick_candidate, set_mask
from .errors import AppInputError
from .find_panel import FindChoices, FrameFindRequest, prepare_frame_find
from .jobs import JobResult
from .options import TrackOptions
from .proposals import FoundObjects, found_on_frame
from .settings import MAX_OBJECTS
from .still import ImageResults, ObjectResult, segmentation, write_image_results


class ImageTools:
    """`AppSession`'s methods for images, candidates and Find objects (its fields candidates, found, searched and
    image_results hold their state)."""

    # ------------------------------------------------------------------ the candidates of a click prompt
    def candidate_view(self, frame: int) -> Optional[tuple[list[tuple[np.ndarray, str]], int]]:
        """The selected object's candidates on `frame` as thumbnails with captions, and the one in use; None
        when it has none there (no click prompt, or one the model decodes to a single mask)."""
        obj = self.objects.get(self.selected) if self.selected is not None else None
        found = None if obj is None else self.candidates.get((obj.obj_id, frame))
        if found is None or len(found) < 2 or frame not in obj.prompts:
            return None
        pick = obj.picks.get(frame)
        in_use = found.chosen if pick is None else pick.index
        return thumbnails(self.frame(frame), found, obj.color, in_use), in_use

    def pick_candidate(self, frame: int, index: int) -> str:
        """Candidate `index` of the selected object's clicks on `frame` as its prompt there (a mask prompt;
        the clicks' own candidate means the clicks alone)."""
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame, obj = self.check_frame(frame), self.current
        found = self.candidates.get((obj.obj_id, frame))
        if found is None or len(found) < 2 or not 0 <= index < len(found):
            raise AppInputError(f"{obj.name} has no candidate {index + 1} on frame {frame}: click on the object first")
        mask = None if index == found.chosen else found.masks[index]
        note = pick_candidate(obj, frame, index, mask)
        self.previews.pop((obj.obj_id, frame), None)  # the candidates stay: the clicks did not change
        return note

    # ------------------------------------------------------------------ Find objects
    def find_request(self, frame: int, model: str, choices: FindChoices, density: str) -> FrameFindRequest:
        """The checked request of Find objects on `frame` with the Find panel's choices (Everything's grid: the
        density): the tracking job's finder, on that frame."""
        self.check_open()
        if self.tracking:
            raise AppInputError("tracking is running: find objects when it ends")
        frame = self.check_frame(frame)
        image = StillImage.of(np.asarray(self.frame(frame)), self.video.name, frame)
        return prepare_frame_find(image, choices.settings(density), model)

    def find_dir(self) -> Path:
        """An empty folder for a Find job (it writes no file; a job has a folder)."""
        self.check_open()
        folder = self.workdir / "find"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder

    def set_found(self, found: FoundObjects) -> str:
        """Find's result on a frame, without what the objects there already hold (discovery's coverage rule, on
        their previews and mask prompts): a second Find on a frame offers only what is new."""
        found, covered = self._uncovered(found)
        self.found = found
        count = len(found.proposals)
        held = f"; {covered} more the objects there hold already" if covered else ""
        if not count:
            return (f"No new objects found on frame {found.frame} ({found.what}{held}): try a finer density or "
                    "lower thresholds (Find tab), or prompt the objects yourself.")
        return (f"Found {count} object(s) on frame {found.frame} ({found.what}{held}): click a numbered outline "
                "to make it an object, or press Add all.")

    def _uncovered(self, found: FoundObjects) -> tuple[FoundObjects, int]:
        present = self._object_masks(found.frame)
        if not present or not found.proposals:
            return found, 0
        items = [Found(p.mask, p.score, p.label) for p in found.proposals]
        decisions = decide(items, present, [], np.asarray(self.frame(found.frame)), DiscoverySettings("everything"),
                           room=len(items))
        kept = [d.found for d in decisions if d.kind == "new"]
        kept.sort(key=lambda f: -f.area)
        return found_on_frame(kept, found.frame, found.what), len(items) - len(kept)

    def _object_masks(self, frame: int) -> dict[int, np.ndarray]:
        """The objects' masks on `frame`: their previews' (visible), else their mask prompts."""
        masks = {}
        for obj_id, obj in self.objects.items():
            preview = self.previews.get((obj_id, frame))
            if preview is not None and obj_id in preview.result.obj_ids:
                mask = preview.result.visible_mask(list(preview.result.obj_ids).index(obj_id))
            else:
                prompt = obj.prompts.get(frame)
                mask = None if prompt is None else prompt.mask
            if mask is not None and mask.any():
                masks[obj_id] = mask
        return masks

    def tracking_find(self, choices: FindChoices, density: str) -> Optional[DiscoverySettings]:
        """What a Track job finds by itself ("keep finding while tracking"), with no keyframe on the frames
        whose found objects were taken here, and the removed found objects tracked unseen (find_panel.py)."""
        hidden = tuple(obj.obj_id for obj in self.hidden_objects())
        return choices.for_tracking(density, tuple(sorted(self.searched)), hidden)

    def hidden_objects(self) -> list[ObjectState]:
        """The removed found objects a job that keeps finding tracks unseen: the latest removed first, as many as
        leave the job room for one object more."""
        room = max(MAX_OBJECTS - 1 - sum(1 for obj in self.objects.values() if obj.frames()), 0)
        return list(reversed(self.dismissed.values()))[:room]

    def hide_found(self) -> None:
        self.found = None

    def adopt_proposal_at(self, frame: int, x: float, y: float) -> str:
        """A click on the frame view (video pixels) while proposals show there: the proposal under it becomes an
        object."""
        proposal = self.found.at(x, y) if self.found is not None and self.found.frame == frame else None
        if proposal is None:
            raise AppInputError("no proposal here: click inside a numbered outline, or press Hide (under Find objects) to "
                                "prompt with clicks")
        if self._room() < 1:
            raise AppInputError(f"there are {len(self.objects)} objects already, the most allowed ({MAX_OBJECTS})")
        return self._adopt([self.found.take(proposal.number)], frame)

    def adopt_all(self, frame: int) -> str:
        """Every proposal shown on `frame` becomes an object, up to the object limit."""
        if self.found is None or self.found.frame != frame or not self.found.proposals:
            raise AppInputError("there are no proposals on this frame: press Find objects first")
        room = self._room()
        if room < 1:
            raise AppInputError(f"there are {len(self.objects)} objects already, the most allowed ({MAX_OBJECTS})")
        return self._adopt([self.found.take(p.number) for p in list(self.found.proposals)[:room]], frame)

    def _reusable(self) -> Optional[ObjectState]:
        """The selected object when it is an unprompted mask object (a new session's first): the first proposal
        taken becomes it."""
        obj = self.objects.get(self.selected) if self.selected is not None else None
        return obj if obj is not None and obj.task == "mask" and not obj.frames() else None

    def _room(self) -> int:
        return MAX_OBJECTS - len(self.objects) + (self._reusable() is not None)

    def _adopt(self, proposals: list, frame: int) -> str:
        """`proposals` (taken from the shown ones) as objects with a mask prompt on `frame`; the last is selected."""
        if self.tracking:
            raise AppInputError("tracking is running: wait for it to finish or press Stop")
        frame = self.check_frame(frame)
        names = []
        for proposal in proposals:
            obj = self._reusable() if not names else None
            obj = obj or self.add_object()
            self.selected = obj.obj_id
            set_mask(obj, frame, proposal.mask)
            obj.label, obj.score = proposal.label, proposal.score
            if proposal.label and obj.name == f"object {obj.obj_id}":
                obj.name = f"{proposal.label} {obj.obj_id}"
            self._edited(obj.obj_id, frame)
            names.append(f"{obj.name} (proposal {proposal.number})")
        self.searched.add(frame)
        note = f"Added {', '.join(names)} on frame {frame}."
        left = len(self.found.proposals) if self.found is not None else 0
        if left and self._room() < 1:
            note += f" {left} proposal(s) left out: the object limit is {MAX_OBJECTS}."
        return note

    def take_found(self, result: JobResult) -> None:
        """The objects the tracking job of `result` found by itself become the page's objects: mask objects
        prompted with their tracked mask on the frame they were found on, with their label and score (an
        unprompted object of the same id, a placeholder, gives way)."""
        report = result.discovery
        if report is None or not report.found or result.first_frame is None or result.files.records is None:
            return
        records = self.records
        for obj_id, found in sorted(report.found.items()):
            record = records.get(found.found_on)
            held = self.objects.get(obj_id)
            if obj_id in result.removed or record is None or obj_id not in record.obj_ids or \
                    (held is not None and held.frames()):
                continue
            mask = record.masks[list(record.obj_ids).index(obj_id)]
            if not mask.any():
                continue
            name = f"{found.label} {obj_id}" if found.label else f"object {obj_id}"
            obj = ObjectState(obj_id, name, found.task, label=found.label, score=found.score)
            set_mask(obj, found.found_on, mask)
            self.objects[obj_id] = obj
        self.next_id = max(self.next_id, max(report.found) + 1)

    def found_note(self) -> str:
        """The objects the last tracking job found by itself, for people ('' when none)."""
        report = None if self.results is None else self.results.discovery
        if report is None or not report.found:
            return ""
        names = [f"{self.objects[obj_id].name if obj_id in self.objects else f'object {obj_id}'} from frame "
                 f"{found.first_frame}" for obj_id, found in sorted(report.found.items())]
        return f"New objects found while tracking: {', '.join(names)}."

    # ------------------------------------------------------------------ an image's results
    def unpreviewed(self, options: TrackOptions) -> list[int]:
        """The objects whose prompt on the image has no preview with `options` (each needs one to segment it);
        AppInputError when an object has no prompt."""
        self.prompts_document()
        return [obj_id for obj_id in self.objects if self.preview_target_of(obj_id, 0, options)]

    def segment_image(self, options: TrackOptions) -> ImageResults:
        """The image's results from every object's preview with `options` (the masks the page showed; a picked
        candidate exactly), written with the objects' effects and the page's scene (`still.py`)."""
        self.check_open()
        missing = self.unpreviewed(options)
        if missing:
            raise AppInputError(f"object {missing[0]} has no preview yet with {options.model}: segment again")
        results = []
        for obj_id, obj in self.objects.items():
            pick = obj.picks.get(0)
            results.append(ObjectResult(obj_id, obj.task, obj.prompt_kind(0), self.previews[(obj_id, 0)].result,
                                        self.candidates.get((obj_id, 0)), None if pick is None else pick.index))
        image = StillImage.of(np.asarray(self.frame(0)), self.video.name)
        found = segmentation(image, options.model, results)
        self.image_results = write_image_results(found, self.new_job_dir(), self.render_settings().effects)
        return self.image_results
