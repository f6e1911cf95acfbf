"""The report of an evaluation, from its `DatasetScores` and the run's `RunInfo`:

    DIR/scores.json    the header, the overall figures, per attribute, per sequence and per object (fractions)
    DIR/scores.csv     a row per object, per sequence, per attribute and the dataset's (the same numbers)
    DIR/plots/*.png    per_sequence.png (the main metric of each sequence); boxes: success.png, precision.png;
                       attributes.png when sequences list attributes

and a rich table on the console (percentages, as the benchmarks print them)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..weights import WeightsSource
from .scores import LABELS, MOT_METRICS, DatasetScores, SequenceScore

SCORES_JSON = "scores.json"
SCORES_CSV = "scores.csv"
PLOTS_DIR = "plots"
DPI = 100


@dataclass(frozen=True)
class RunInfo:
    """The report's header: what made the predictions and where."""

    dataset: str  # the dataset's folder
    layout: str
    model: str  # a model name, or "predictions of PRED_DIR" (--score-only)
    checkpoint: Optional[str]  # where the weights came from (None: --score-only)
    checkpoint_sha256: Optional[str]  # of the checkpoint file, when there is one
    precision: Optional[str]
    device: Optional[str]
    date: str  # ISO 8601, local time with its offset

    def lines(self) -> list[str]:
        digest = f" (sha256 {self.checkpoint_sha256[:16]}…)" if self.checkpoint_sha256 else ""
        rows = [("dataset", f"{self.dataset} ({self.layout})"), ("model", self.model),
                ("checkpoint", (self.checkpoint or "") + digest), ("precision", self.precision),
                ("device", self.device), ("date", self.date)]
        return [f"{key}: {value}" for key, value in rows if value]


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def checkpoint_of(weights: WeightsSource, model: str) -> tuple[str, Optional[str]]:
    """Where `model`'s weights come from, and the SHA-256 of their file when there is one (an official
    checkpoint once it is in the Hugging Face cache)."""
    if weights.kind == "file":
        path = Path(weights.path).resolve()
        return str(path), sha256_of(path)
    if weights.kind != "hub":
        return weights.describe(), None
    hub = load_config(model).hub
    if hub is None:
        return f"{model} has no official checkpoint", None
    name = f"hf://{hub.repo_id}/{hub.filename}"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return name, None
    cached = try_to_load_from_cache(repo_id=hub.repo_id, filename=hub.filename)
    return name, sha256_of(Path(cached)) if isinstance(cached, str) else None


def sha256_of(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def precision_of(devices: Sequence[str]) -> str:
    """The model's matrix precision on `devices` (the predictor's "auto": bfloat16 on CUDA, float32 else)."""
    kinds = {"bfloat16" if d.startswith("cuda") else "float32" for d in devices}
    return "/".join(sorted(kinds)) if kinds else "bfloat16 on CUDA, float32 on the CPU"


# --------------------------------------------------------------------------- files


def write_report(scores: DatasetScores, info: RunInfo, out: Path) -> list[Path]:
    """scores.json, scores.csv and the plots in `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / SCORES_JSON, out / SCORES_CSV
    _write_atomically(json_path, json.dumps(scores_document(scores, info), indent=1, allow_nan=False) + "\n")
    _write_atomically(csv_path, _csv_text(scores))
    return [json_path, csv_path, *write_plots(scores, info, out / PLOTS_DIR)]


def scores_document(scores: DatasetScores, info: RunInfo) -> dict[str, Any]:
    """scores.json's content: everything but "header" depends on the predictions and ground truth only."""
    curves = scores.curves
    return {
        "header": asdict(info),
        "layout": scores.layout,
        "granularity": scores.granularity,
        "metrics": list(scores.metrics),
        "complete": scores.complete,
        "overall": _numbers(scores.overall),
        "mot": _numbers(scores.mot),
        "attributes": {name: _numbers(values) for name, values in scores.attributes.items()},
        "curves": None if curves is None else {key: _numbers(list(getattr(curves, key))) for key in
                                               ("overlaps", "success", "pixels", "precision")},
        "sequences": [_sequence_document(s) for s in scores.sequences],
    }


def _sequence_document(s: SequenceScore) -> dict[str, Any]:
    return {"name": s.name, "values": _numbers(s.values),
            "objects": [{"id": o.obj_id, "values": _numbers(o.values)} for o in s.objects],
            "attributes": list(s.attributes), "mot": _numbers(s.mot), "error": s.error}


def _numbers(value: Any) -> Any:
    """Plain floats for JSON; NaN (a metric with nothing to measure) becomes null."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: _numbers(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    number = float(value)
    return None if math.isnan(number) else number


def _csv_text(scores: DatasetScores) -> str:
    metrics = list(scores.metrics)
    mot = list(MOT_METRICS) if scores.mot is not None else []
    rows = [["level", "sequence", "object", *metrics, *mot, "attributes", "error"]]

    def row(level: str, sequence: str, obj: str, values: dict, mot_values: Optional[dict] = None,
            attributes: Sequence[str] = (), error: Optional[str] = None) -> list[str]:
        return [level, sequence, obj, *(_cell(values.get(m)) for m in metrics),
                *(_cell((mot_values or {}).get(m)) for m in mot), " ".join(attributes), error or ""]

    for s in scores.sequences:
        rows += [row("object", s.name, str(o.obj_id), o.values) for o in s.objects]
        rows.append(row("sequence", s.name, "", s.values, s.mot, s.attributes, s.error))
    rows += [row("attribute", name, "", values) for name, values in scores.attributes.items()]
    rows.append(row("dataset", "", "", scores.overall, scores.mot))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def _cell(value: Optional[float]) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


# --------------------------------------------------------------------------- plots


def write_plots(scores: DatasetScores, info: RunInfo, folder: Path) -> list[Path]:
    """The PNGs of the scores (none without a scored sequence)."""
    scored = [s for s in scores.sequences if s.scored]
    if not scored:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = [_per_sequence_plot(scores, scored, info, folder / "per_sequence.png")]
    if scores.curves is not None:
        paths += _curve_plots(scores, info, folder)
    if scores.attributes:
        paths.append(_attribute_plot(scores, info, folder / "attributes.png"))
    return paths


def _figure(size: tuple[float, float]) -> Figure:
    """A figure drawn by Agg, apart from pyplot's global state (no display, safe beside other threads)."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _title(info: RunInfo, what: str) -> str:
    return f"{what}: {info.model} on {Path(info.dataset).name or info.dataset} ({info.layout})"


def _per_sequence_plot(scores: DatasetScores, scored: Sequence[SequenceScore], info: RunInfo, path: Path) -> Path:
    main = scores.metrics[0]
    values = [100 * s.values[main] for s in scored]
    figure = _figure((min(40.0, max(6.0, 0.3 * len(scored) + 2)), 4.5))
    axes = figure.add_subplot()
    axes.bar(range(len(scored)), values, color="tab:blue")
    axes.axhline(100 * scores.overall[main], color="tab:red", linestyle="--",
                 label=f"overall {100 * scores.overall[main]:.1f}")
    axes.set_xticks(range(len(scored)), [s.name for s in scored], rotation=90, fontsize=7)
    axes.set(ylabel=f"{LABELS[main]} (%)", ylim=(0, 100), xlim=(-0.6, len(scored) - 0.4),
             title=_title(info, f"{LABELS[main]} per sequence"))
    axes.legend(loc="upper right")
    figure.savefig(path, dpi=DPI)
    return path


def _curve_plots(scores: DatasetScores, info: RunInfo, folder: Path) -> list[Path]:
    curves, overall = scores.curves, scores.overall
    plots = (("success.png", curves.overlaps, curves.success, "overlap threshold", "success rate",
              f"AUC {100 * overall['auc']:.1f}", "Success plot of OPE"),
             ("precision.png", curves.pixels, curves.precision, "location error threshold (pixels)", "precision",
              f"P@20 {100 * overall['precision']:.1f}", "Precision plot of OPE"))
    paths = []
    for name, x, y, x_label, y_label, legend, title in plots:
        figure = _figure((5.5, 4.5))
        axes = figure.add_subplot()
        axes.plot(x, y, color="tab:red", linewidth=2, label=f"{info.model} [{legend}]")
        axes.set(xlabel=x_label, ylabel=y_label, xlim=(float(np.min(x)), float(np.max(x))), ylim=(0, 1.02),
                 title=_title(info, title))
        axes.grid(alpha=0.3)
        axes.legend(loc="lower left" if name == "success.png" else "lower right", fontsize=8)
        figure.savefig(folder / name, dpi=DPI)
        paths.append(folder / name)
    return paths


def _attribute_plot(scores: DatasetScores, info: RunInfo, path: Path) -> Path:
    main = scores.metrics[0]
    names = sorted(scores.attributes, key=lambda a: scores.attributes[a][main])
    figure = _figure((6.5, max(3.0, 0.3 * len(names) + 1.5)))
    axes = figure.add_subplot()
    values = [100 * scores.attributes[a][main] for a in names]
    axes.barh(range(len(names)), values, color="tab:green")
    axes.set_yticks(range(len(names)), names, fontsize=8)
    for y, value in enumerate(values):
        axes.text(value + 1, y, f"{value:.1f}", va="center", fontsize=7)
    axes.set(xlabel=f"{LABELS[main]} (%)", xlim=(0, 105), title=_title(info, f"{LABELS[main]} per attribute"))
    figure.savefig(path, dpi=DPI)
    return path


# --------------------------------------------------------------------------- console


def scores_table(scores: DatasetScores, info: RunInfo) -> Table:
    """A row per sequence (its objects' count, its metrics in %, MOT's when there are any), then the
    dataset's overall row."""
    metrics = list(scores.metrics)
    mot = list(MOT_METRICS) if scores.mot is not None else []
    table = Table(title=f"{info.layout}: {info.model}")
    table.add_column("sequence", overflow="fold")
    table.add_column("objects", justify="right")
    for name in [LABELS[m] for m in metrics] + mot:
        table.add_column(name, justify="right")
    table.add_column("note", overflow="fold", style="red")
    for s in scores.sequences:
        table.add_row(s.name, str(len(s.objects)) if s.scored else "",
                      *(_percent(s.values.get(m)) for m in metrics),
                      *(_percent((s.mot or {}).get(m)) for m in mot), s.error or "")
    table.add_section()
    scored = sum(s.scored for s in scores.sequences)
    note = "" if scores.complete else f"{len(scores.failed)} of {len(scores.sequences)} sequences not scored"
    table.add_row(f"overall ({scored} sequences)", str(sum(len(s.objects) for s in scores.sequences)),
                  *(_percent(scores.overall.get(m)) for m in metrics),
                  *(_percent((scores.mot or {}).get(m)) for m in mot), note, style="bold")
    return table


def attributes_table(scores: DatasetScores) -> Table:
    metrics = list(scores.metrics)
    table = Table(title="per attribute")
    table.add_column("attribute")
    table.add_column("sequences", justify="right")
    for m in metrics:
        table.add_column(LABELS[m], justify="right")
    for name, values in scores.attributes.items():
        count = sum(name in s.attributes for s in scores.sequences if s.scored)
        table.add_row(name, str(count), *(_percent(values.get(m)) for m in metrics))
    return table


def show_report(scores: DatasetScores, info: RunInfo, paths: Sequence[Path], console: Optional[Console] = None) -> None:
    console = console or Console()
    for line in info.lines():
        console.print(line, highlight=False, soft_wrap=True)
    console.print(scores_table(scores, info))
    if scores.attributes:
        console.print(attributes_table(scores))
    for path in paths:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _percent(value: Optional[float]) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.1f}"
