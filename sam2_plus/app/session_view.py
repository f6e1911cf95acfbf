"""The frame view of a page's session (`AppSession` inherits it): a frame with the last results, the previews,
the prompts and Find objects' proposals drawn, enlarged for small videos; the brush's canvas; the object list.
It works on the session's video, objects and previews (session.py)."""

from __future__ import annotations

import html

import cv2
import numpy as np

from ..media.decode import FrameSource
from ..media.render import TrackRenderer
from .drawing import draw_prompts
from .jobs import VIEW_CACHE_BYTES
from .proposals import draw_proposals

MIN_VIEW_SIDE = 1280  # smaller videos are served enlarged by a whole factor: the page shrinks the view to fit
# its column (it never enlarges an image, and a click's pixel must stay the served image's)
BRUSH_SIDE = 640  # the brush's canvas: large enough to paint on, small enough to paint smoothly


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """`image` enlarged by a whole factor, each pixel a square (a click maps back by dividing by `scale`)."""
    return image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


class FrameView:
    """`AppSession`'s methods for the frame view (its fields _frames and view_frame hold their state)."""

    def frame(self, index: int) -> np.ndarray:
        self.check_open()
        if self._frames is None:
            self._frames = FrameSource(self.video, cache_bytes=VIEW_CACHE_BYTES)
        return self._frames[self.check_frame(index)]

    @property
    def view_scale(self) -> int:
        """How much the frame view enlarges the video (clicks on the view are divided by it)."""
        return max(1, -(-MIN_VIEW_SIDE // max(self.info.width, self.info.height)))  # rounded up

    def render_view(self, index: int, show_results: bool = True) -> np.ndarray:
        """The frame to prompt on, `view_scale` times the video's size: the last results (optional), each
        object's preview on this frame, and every prompt of this frame."""
        index = self.check_frame(index)
        self.view_frame = index
        base = self.tracked_frame(index) if show_results else None
        image = np.array(self.frame(index) if base is None else base, dtype=np.uint8, copy=True)
        for (obj_id, frame), preview in self.previews.items():
            if frame == index and obj_id in self.objects:
                image = TrackRenderer({obj_id: self.objects[obj_id].task}).render(image, preview.result)
        image = draw_prompts(self.enlarge(image), list(self.objects.values()), index, self.corner, self.view_scale)
        if self.found is not None and self.found.frame == index:
            image = draw_proposals(image, self.found.proposals, self.view_scale)
        return image

    def brush_background(self, index: int) -> np.ndarray:
        """The frame the brush paints on, enlarged by a whole factor up to BRUSH_SIDE (the page fits it to the
        editor; a larger canvas paints slowly); the painted layer is scaled back to the video's size."""
        return enlarged(np.array(self.frame(index)), max(1, BRUSH_SIDE // max(self.info.width, self.info.height)))

    def enlarge(self, image: np.ndarray) -> np.ndarray:
        return enlarged(image, self.view_scale)

    def objects_html(self) -> str:
        """The object list with colour swatches, for people."""
        if not self.objects:
            return "<p>No objects: press <b>Add object</b>.</p>"
        rows = []
        for obj in self.objects.values():
            r, g, b = obj.color
            marker = " &#9664; selected" if obj.obj_id == self.selected else ""
            swatch = (f'<span style="display:inline-block;width:0.9em;height:0.9em;border-radius:3px;'
                      f'background:rgb({r},{g},{b});vertical-align:middle"></span>')
            found = f" &middot; <i>{html.escape(obj.found_note())}</i>" if obj.found_note() else ""
            rows.append(f"<li>{swatch} <b>{html.escape(obj.name)}</b> (id {obj.obj_id}) &middot; {obj.task} "
                        f"&middot; {obj.where()}{found}{marker}</li>")
        return '<ul style="list-style:none;padding-left:0;margin:0">' + "".join(rows) + "</ul>"

    def object_choices(self) -> list[tuple[str, int]]:
        return [(f"{obj.name} (id {obj.obj_id})", obj.obj_id) for obj in self.objects.values()]
