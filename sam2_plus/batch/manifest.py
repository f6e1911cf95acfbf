"""The batch manifest: JSONL, one video a line, checked as a whole before anything runs.

    {"video": "clips/a.mp4", "prompts": {"objects": [...]}}
    {"video": "clips/b.mp4", "prompts": "prompts/b.json", "name": "b-box", "model": "sam2.1-tiny",
     "motion_aware": true, "outputs": ["json", "export"], "max_frames": 300, "export_formats": ["cvat", "mot"]}
    {"video": "clips/c.mp4", "find": "person. car."}
    {"video": "clips/d.mp4", "find": {"mode": "everything", "keyframe_interval": 10}, "prompts": {...}}

`video` and a prompts file are relative to the manifest's folder. `prompts` is the prompts JSON of
`sam2_plus/prompts.py`, inline (an object or JSON text) or a file; it is read and checked against the video
when the video's turn comes, so a bad prompt fails that line only. `name` (default: the video's file name
without its suffix) is the video's folder in the output folder. `outputs` picks from "overlay", "export" and
"json" (the files of `python -m sam2_plus.track --out-dir`); `export_formats` adds formats of
`sam2_plus.exports` to the export (`--export-format`). `find` makes the job find objects by itself, as the
options JSON of /track does (`sam2_plus/discovery/settings.py`): "everything", phrases ("person. car."), or an
object of the settings (`keyframe_interval`, `score_threshold`, `detector`, ...); with it, `prompts` may be left
out. It is checked with the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..config import canonical_model_name, feature_problem
from ..discovery.settings import DiscoveryError, DiscoverySettings, settings_from_json
from ..exports import ExportFormatError, parse_export_formats
from ..track import OUTPUT_FILES

KEYS = ("video", "prompts", "name", "model", "motion_aware", "outputs", "max_frames", "export_formats", "find")
MAX_ERRORS_SHOWN = 20
MAX_NAME_LENGTH = 200
RESERVED_NAMES = ("summary.jsonl",)


class ManifestError(ValueError):
    """The manifest cannot be used; the message lists every line that is wrong."""


@dataclass(frozen=True)
class VideoJob:
    """One manifest line, checked: what to track and which outputs to write to the folder `name`."""

    line: int
    name: str
    video: Path
    prompts: Optional[str]  # JSON text, or a file holding it (sam2_plus.track.read_prompts_text); None: only `find`
    model: str
    outputs: tuple[str, ...]
    motion_aware: bool = False
    max_frames: Optional[int] = None
    export_formats: tuple[str, ...] = ()
    find: Optional[DiscoverySettings] = None  # objects the job finds by itself


@dataclass(frozen=True)
class JobDefaults:
    """Values of lines that do not give their own (the command line's --model and --outputs)."""

    model: str = "sam2++"
    outputs: tuple[str, ...] = tuple(OUTPUT_FILES)


def job_defaults(model: str, outputs: str) -> JobDefaults:
    """The command line's --model and --outputs ("overlay,export,json") checked; ManifestError."""
    names = [name.strip() for name in outputs.split(",") if name.strip()]
    return JobDefaults(_model(model, "--model"), _outputs(names, "--outputs"))


def read_manifest(path: Path, defaults: JobDefaults = JobDefaults()) -> list[VideoJob]:
    """Every line of the manifest as a VideoJob; ManifestError naming each wrong line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"manifest {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"manifest {path}: cannot be read ({e})") from None
    jobs: list[VideoJob] = []
    errors: list[str] = []
    names: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            job = _parse_line(line, number, Path(path).resolve().parent, defaults)
            _claim_name(job, names)
            jobs.append(job)
        except ManifestError as e:
            errors.append(str(e))
    if errors:
        more = f"\n... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise ManifestError(f"manifest {path}:\n" + "\n".join(errors[:MAX_ERRORS_SHOWN]) + more)
    if not jobs:
        raise ManifestError(f"manifest {path} holds no video; write one JSON object per line")
    return jobs


def _parse_line(line: str, number: int, base: Path, defaults: JobDefaults) -> VideoJob:
    where = f"line {number}"
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: must be a JSON object like {{\"video\": ..., \"prompts\": ...}}")
    unknown = [key for key in entry if key not in KEYS]
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    video = base / _text(entry, "video", where)
    name = _name(entry.get("name"), video, where)  # checked in this order: a line's first error is reported
    find = _find(entry.get("find"), where)
    prompts = _prompts(entry, base, where, find is not None)
    model = _model(entry.get("model", defaults.model), where)
    outputs = _outputs(entry.get("outputs", defaults.outputs), where)
    motion_aware = _flag(entry.get("motion_aware", False), where)
    problem = feature_problem(model, motion_aware=motion_aware, finds=find is not None)
    if problem:
        raise ManifestError(f"{where}: {problem}")
    return VideoJob(
        line=number,
        name=name,
        video=video,
        prompts=prompts,
        model=model,
        outputs=outputs,
        motion_aware=motion_aware,
        max_frames=_max_frames(entry.get("max_frames"), where),
        export_formats=_export_formats(entry.get("export_formats", []), outputs, where),
        find=find,
    )


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    if key not in entry:
        raise ManifestError(f"{where}: '{key}' is missing")
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: '{key}' must be a non-empty string")
    return value


def _prompts(entry: dict[str, Any], base: Path, where: str, finds: bool) -> Optional[str]:
    if "prompts" not in entry:
        if finds:
            return None
        raise ManifestError(f"{where}: 'prompts' is missing (or give 'find' to find the objects)")
    value = entry["prompts"]
    if isinstance(value, dict):
        return json.dumps(value)
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: 'prompts' must be the prompts JSON object or the path of a file holding it")
    return value if value.lstrip().startswith("{") else str(base / value)


def _find(value: Any, where: str) -> Optional[DiscoverySettings]:
    try:
        return settings_from_json(value)
    except DiscoveryError as e:
        raise ManifestError(f"{where}: {e}") from None  # the message names 'find'


def _name(value: Any, video: Path, where: str) -> str:
    name = video.stem if value is None else value
    if not isinstance(name, str):
        raise ManifestError(f"{where}: 'name' must be a string")
    bad = ("it is empty" if not name.strip() else
           "it holds '/' or '\\'" if "/" in name or "\\" in name else
           "it starts with '.'" if name.startswith(".") else
           "it holds control characters" if any(ord(c) < 32 for c in name) else
           f"it is longer than {MAX_NAME_LENGTH} characters" if len(name) > MAX_NAME_LENGTH else
           "the output folder's summary has that name" if name in RESERVED_NAMES else None)
    if bad is not None:
        origin = "the video's file name gives" if value is None else "'name' is"
        raise ManifestError(f"{where}: {origin} {name!r}, which cannot name the video's folder: {bad}"
                            + ("; give a 'name'" if value is None else ""))
    return name


def _claim_name(job: VideoJob, names: dict[str, int]) -> None:
    first = names.setdefault(job.name, job.line)
    if first != job.line:
        raise ManifestError(f"line {job.line}: the folder name {job.name!r} is already used by line {first}; "
                            "give this line a different 'name'")


def _model(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: 'model' must be a string")
    try:
        return canonical_model_name(value)
    except ValueError as e:
        raise ManifestError(f"{where}: {e}") from None


def _outputs(value: Any, where: str) -> tuple[str, ...]:
    choices = ", ".join(OUTPUT_FILES)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where}: 'outputs' must be a non-empty list of {choices}")
    unknown = [v for v in value if v not in OUTPUT_FILES]
    if unknown:
        raise ManifestError(f"{where}: unknown output {unknown[0]!r}; choose from {choices}")
    return tuple(dict.fromkeys(value))


def _export_formats(value: Any, outputs: tuple[str, ...], where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ManifestError(f"{where}: 'export_formats' must be a list of format names")
    try:
        formats = parse_export_formats(value)
    except ExportFormatError as e:
        raise ManifestError(f"{where}: {e}") from None
    if formats and "export" not in outputs:
        raise ManifestError(f"{where}: 'export_formats' go into the export; add \"export\" to 'outputs'")
    return formats


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ManifestError(f"{where}: 'motion_aware' must be true or false")
    return value


def _max_frames(value: Any, where: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ManifestError(f"{where}: 'max_frames' must be a whole number of at least 1")
    return value
