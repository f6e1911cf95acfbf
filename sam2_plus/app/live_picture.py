"""The Live tab's picture: a Gradio image sent to the page inside the event's answer (a JPEG data URL) instead of
as a file the browser then fetches. At 10 pictures a second a fetched picture is replaced before it has loaded
whenever the server or the network is slow, and then the page shows none and ignores clicks on it (Gradio maps a
click through the picture's loaded size). Gradio keeps a type stub of each component class beside its module
(live_picture.pyi, written by Gradio when it differs)."""

from __future__ import annotations

from typing import Any, Optional

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from gradio.image_utils import encode_image_array_to_base64


class LivePicture(gr.Image):
    """gr.Image whose numpy pictures go inline as JPEG data URLs; shown by Gradio's own image component."""

    def get_block_name(self) -> str:
        return "image"

    def postprocess(self, value: Any) -> Optional[ImageData]:
        if isinstance(value, np.ndarray):
            return ImageData(url=encode_image_array_to_base64(value), mime_type="image/jpeg")
        return super().postprocess(value)
