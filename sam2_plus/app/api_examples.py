"""What the "Use via API" page shows for /track: a call that works (an example clip, a prompts JSON for it, the
options JSON), instead of Gradio's generic examples (a PDF, "Hello!!").

The page takes each input's example from the component's `example_payload()`. The components keep their own
class (the frontend picks its block by the class name) and get the example as an instance attribute: a
subclass would also make Gradio write a .pyi stub beside this module at every import."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gradio.components import Component
from gradio_client import handle_file

EXAMPLE_CLIP = "shapes.mp4"  # examples/make_examples.py: 320x240, 36 frames
# its red disc on the first frame (centre (30, 84), radius 22), tracked as a box
EXAMPLE_PROMPTS = {"objects": [{"id": 1, "task": "box", "prompts": [{"frame": 0, "box": [8, 62, 52, 106]}]}]}


def example_clip(examples_dir: Path) -> str:
    """Where a client fetches the example clip: the Space's copy on a Hugging Face Space, else this machine's."""
    space = os.environ.get("SPACE_ID")
    if space:
        return f"https://huggingface.co/spaces/{space}/resolve/main/examples/{EXAMPLE_CLIP}"
    return str(examples_dir / EXAMPLE_CLIP)


def with_example(component: Component, example: Any) -> Component:
    """`component`, whose API example is `example`: a file's URL or path (for gr.File) or a JSON document (for
    gr.Textbox).

    The page writes a file as `handle_file(url)` only when its example has a "url", and puts a text example
    between double quotes as it is (Python, JavaScript and the curl JSON alike): so the JSON's quotes come
    escaped, as the text of a string literal (`"{\\"objects\\": ...}"` on the page is the JSON)."""
    if component.get_block_name() == "file":
        payload: Any = {**handle_file(example), "url": example}
    else:
        payload = json.dumps(json.dumps(example))[1:-1]
    component.example_payload = lambda: payload  # type: ignore[method-assign]
    component.example_value = lambda: payload  # type: ignore[method-assign]
    return component
