"""What the "Use via API" page shows for /track: a call that works (an example clip, a prompts JSON for it, the
options JSON), instead of Gradio's generic examples (a PDF, "Hello!!").

The page takes each input's example from the component's `example_payload()`. The components keep their own
class (the frontend picks its block by the class name) and get the example as an instance attribute: a
subclass would also make Gradio write a .pyi stub beside this module at every import.

The clip is given by a URL, which every snippet of the page fetches (Python's `handle_file(url)`, JavaScript's
`fetch(url)` to a Blob): on a Space its copy in the Space's files; elsewhere this app's own URL of it (its file
route, which serves the example clips). A server does not download a URL of a private address, so such a URL
of an example clip stands for the clip itself (`served_example`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from gradio import processing_utils, utils
from gradio.components import Component

EXAMPLE_CLIP = "shapes.mp4"  # examples/make_examples.py: 320x240, 36 frames
# its red disc on the first frame (centre (30, 84), radius 22), tracked as a box
EXAMPLE_PROMPTS = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [8, 62, 52, 106]}]}]}
EXAMPLE_IMAGE = "shapes.png"  # the clip's first frame: /segment_image's example
# a click on the red disc (three candidates) and a box around the blue square (centre (240, 108), side 40)
EXAMPLE_IMAGE_PROMPTS = {"objects": [
    {"id": 1, "task": "mask", "prompts": [{"frame": 0, "points": [[30, 84]]}]},
    {"id": 2, "task": "mask", "prompts": [{"frame": 0, "box": [216, 84, 264, 132]}]}]}
EXAMPLE_SEGMENT_OPTIONS = {"model": "sam2++", "multimask": True}
EXAMPLE_FIND_OPTIONS = {"model": "sam2++", "density": "normal", "max_proposals": 16, "sort": "area"}


FILE_ROUTE = "/gradio_api/file="  # where a Gradio app serves its allowed files


def example_clip(examples_dir: Path, root: Optional[str] = None, name: str = EXAMPLE_CLIP) -> str:
    """Where a client fetches the example clip (or the example file `name`): the Space's copy on a Hugging Face
    Space; else its URL on this app (`root`: the app's URL once it is launched), else this machine's path."""
    space = os.environ.get("SPACE_ID")
    if space:
        return f"https://huggingface.co/spaces/{space}/resolve/main/examples/{name}"
    clip = examples_dir / name
    return f"{root.rstrip('/')}{FILE_ROUTE}{clip}" if root else str(clip)


def served_example(url: Any, examples: Iterable[Path]) -> Optional[Path]:
    """The clip of `examples` that `url` names on an app's file route (whatever its host), else None."""
    if not isinstance(url, str):
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.path.startswith(FILE_ROUTE) or parsed.query:
        return None
    wanted = unquote(parsed.path[len(FILE_ROUTE):])
    return next((clip for clip in examples if str(clip) == wanted), None)


def with_example(component: Component, example: Any) -> Component:
    """`component`, whose API example is `example`: a file's URL or path (for gr.File; a function giving it when
    it is known only once the app runs), a number (for gr.Number) or a JSON document (for gr.Textbox).

    The page writes a file as `handle_file(url)` only when its example has a "url", and puts a text example
    between double quotes as it is (Python, JavaScript and the curl JSON alike): so the JSON's quotes come
    escaped, as the text of a string literal (`"{\\"objects\\": ...}"` on the page is the JSON)."""
    if component.get_block_name() == "file":
        def payload() -> Any:
            where = example() if callable(example) else example
            return {"path": where, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(where).name, "url": where}
    elif component.get_block_name() == "number":
        def payload() -> Any:
            return example
    else:
        text = json.dumps(json.dumps(example))[1:-1]

        def payload() -> Any:
            return text
    component.example_payload = payload  # type: ignore[method-assign]
    component.example_value = payload  # type: ignore[method-assign]
    return component


def uploaded_example(value: Any, examples: Iterable[Path]) -> Any:
    """A file input `value` that names an example clip by its URL on this app (`served_example`), as if the client
    had uploaded the clip (a copy in the upload folder); any other value as it is."""
    if not isinstance(value, dict) or (value.get("meta") or {}).get("_type") != "gradio.FileData":
        return value
    clip = served_example(value.get("path"), examples)
    if clip is None:
        return value
    copy = processing_utils.save_file_to_cache(clip, utils.get_upload_folder())
    return {**value, "path": copy, "url": None, "orig_name": clip.name}
