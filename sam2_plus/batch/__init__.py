"""Batch tracking of many videos: `python -m sam2_plus.batch MANIFEST --out DIR`.

- ``manifest``: the JSONL manifest, checked as a whole (``read_manifest`` -> ``VideoJob``s).
- ``store``: the output folder: DIR/<name>/ per video (published only when complete), summary.jsonl
  (``VideoRecord``s), the staging area.
- ``worker``: one video (``track_video``) over ``sam2_plus.service``, wherever it runs.
- ``runners``: this process, or one worker process per device; ``cluster``: Ray actors.
- ``driver``: a run (``run_batch``): skip what is complete, run the rest, write the summary.
- ``display``: progress bars and the final table; ``cli``: the command line.
"""

from .driver import run_batch
from .manifest import JobDefaults, ManifestError, VideoJob, read_manifest
from .store import OutputStore, VideoRecord

__all__ = ["JobDefaults", "ManifestError", "OutputStore", "VideoJob", "VideoRecord", "read_manifest", "run_batch"]
