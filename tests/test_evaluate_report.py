"""The evaluation's report from hand-made scores: the benchmarks' overall figures (DAVIS averages objects, the
SOT toolkits tracks, TAP-Vid videos), scores.json / scores.csv holding the same numbers, the plots, the
console table, and the header's checkpoint hash and precision."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from sam2_plus.config import HubConfig
from sam2_plus.evaluate import report
from sam2_plus.evaluate.report import RunInfo, checkpoint_of, precision_of, show_report, write_report
from sam2_plus.evaluate.scores import Curves, ObjectScore, SequenceScore, overall_values, score_dataset
from sam2_plus.weights import WeightsSource

INFO = RunInfo("/data/tiny", "lasot", "test-micro", "seeded stand-in", None, "float32", "cpu",
               "2025-01-02T03:04:05+00:00")
OVERLAPS, PIXELS = np.linspace(0, 1, 21), np.arange(51.0)


def jf(j: float, f: float) -> dict[str, float]:
    return {"j_and_f": (j + f) / 2, "j": j, "f": f}


def sot(auc: float, precision: float, normalized: float) -> dict[str, float]:
    return {"auc": auc, "precision": precision, "normalized_precision": normalized}


def curves(success_at: float, precise_from: float) -> Curves:
    """A track whose overlap is `success_at` on every frame and whose centre error is `precise_from` px."""
    return Curves(OVERLAPS, (OVERLAPS < success_at).astype(float), PIXELS, (PIXELS > precise_from).astype(float))


def box_scores():
    sequences = [
        SequenceScore("bird-1", sot(0.8, 1.0, 0.9), (ObjectScore(1, sot(0.8, 1.0, 0.9)),), ("occlusion",),
                      curves(0.8, 3)),
        SequenceScore("car-2", sot(0.4, 0.0, 0.2), (ObjectScore(1, sot(0.4, 0.0, 0.2)),), ("occlusion", "blur"),
                      curves(0.4, 60)),
        SequenceScore("cat-3", attributes=("blur",), error="the video cannot be read"),
    ]
    return score_dataset("lasot", "box", sequences)


def mask_scores():
    sequences = [SequenceScore("one", jf(1.0, 1.0), (ObjectScore(1, jf(1.0, 1.0)),)),
                 SequenceScore("three", jf(0.0, 0.0), tuple(ObjectScore(i, jf(0.0, 0.0)) for i in (1, 2, 3)),
                               mot={"HOTA": 0.5, "IDF1": 0.25, "MOTA": float("nan")})]
    return score_dataset("davis", "mask", sequences)


def test_davis_averages_objects_and_the_sot_toolkits_tracks():
    masks = mask_scores()
    assert masks.overall == pytest.approx({"j_and_f": 0.25, "j": 0.25, "f": 0.25})  # 1 of 4 objects right
    boxes = box_scores()
    assert boxes.overall == pytest.approx(sot(0.6, 0.5, 0.55)) and not boxes.complete
    assert [s.name for s in boxes.failed] == ["cat-3"]
    np.testing.assert_allclose(boxes.curves.success, ((OVERLAPS < 0.8).astype(float) + (OVERLAPS < 0.4)) / 2)
    # cat-3 failed: "blur" is car-2's alone
    assert list(boxes.attributes) == ["blur", "occlusion"]
    assert boxes.attributes["blur"] == pytest.approx(sot(0.4, 0.0, 0.2))
    assert boxes.attributes["occlusion"] == pytest.approx(sot(0.6, 0.5, 0.55))


def test_tapvid_averages_videos():
    points = [SequenceScore("a", {"average_jaccard": 1.0}, (ObjectScore(1, {"average_jaccard": 1.0}),)),
              SequenceScore("b", {"average_jaccard": 0.5}, tuple(ObjectScore(i, {"average_jaccard": v})
                                                                   for i, v in ((1, 0.0), (2, 1.0), (3, 0.5))))]
    assert overall_values("point", points) == {"average_jaccard": 0.75}
    assert overall_values("mask", []) == {} and overall_values("box", []) == {}


def test_scores_json_and_csv_hold_the_same_numbers(tmp_path):
    scores = box_scores()
    write_report(scores, INFO, tmp_path)
    document = json.loads((tmp_path / "scores.json").read_text())
    assert document["header"]["model"] == "test-micro" and document["header"]["date"] == INFO.date
    assert (document["layout"], document["granularity"], document["complete"]) == ("lasot", "box", False)
    assert document["metrics"] == ["auc", "precision", "normalized_precision"]
    assert document["overall"] == pytest.approx(sot(0.6, 0.5, 0.55))
    assert document["curves"]["success"] == pytest.approx(list(scores.curves.success))
    assert document["curves"]["pixels"] == list(PIXELS)
    assert [(s["name"], s["error"], [o["id"] for o in s["objects"]]) for s in document["sequences"]] == [
        ("bird-1", None, [1]), ("car-2", None, [1]), ("cat-3", "the video cannot be read", [])]
    assert document["sequences"][1]["values"] == sot(0.4, 0.0, 0.2)

    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert [(r["level"], r["sequence"], r["object"]) for r in rows] == [
        ("object", "bird-1", "1"), ("sequence", "bird-1", ""), ("object", "car-2", "1"), ("sequence", "car-2", ""),
        ("sequence", "cat-3", ""), ("attribute", "blur", ""), ("attribute", "occlusion", ""), ("dataset", "", "")]
    assert {k: float(rows[-1][k]) for k in scores.metrics} == document["overall"]
    assert rows[4]["auc"] == "" and rows[4]["error"] == "the video cannot be read"
    assert rows[3]["attributes"] == "occlusion blur"


def test_nan_is_null_in_json_and_empty_in_csv(tmp_path):
    write_report(mask_scores(), INFO, tmp_path)
    document = json.loads((tmp_path / "scores.json").read_text())
    assert document["sequences"][1]["mot"] == {"HOTA": 0.5, "IDF1": 0.25, "MOTA": None}
    assert document["mot"] == {"HOTA": 0.5, "IDF1": 0.25, "MOTA": None}
    assert document["curves"] is None and document["attributes"] == {}
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert list(rows[0]) == ["level", "sequence", "object", "j_and_f", "j", "f", "HOTA", "IDF1", "MOTA",
                             "attributes", "error"]
    assert (rows[-1]["HOTA"], rows[-1]["MOTA"]) == ("0.5", "")


def test_box_plots_show_the_curves_and_attributes(tmp_path):
    paths = write_report(box_scores(), INFO, tmp_path)
    plots = tmp_path / "plots"
    assert paths == [tmp_path / "scores.json", tmp_path / "scores.csv", plots / "per_sequence.png",
                     plots / "success.png", plots / "precision.png", plots / "attributes.png"]
    for path in paths[2:]:
        image = np.asarray(Image.open(path).convert("L"))
        assert image.shape[0] >= 300 and image.std() > 10, path  # drawn, not blank
        assert path.stat().st_size < 100_000


def test_mask_plots_are_the_per_sequence_bars(tmp_path):
    paths = write_report(mask_scores(), INFO, tmp_path)
    assert [p.name for p in paths] == ["scores.json", "scores.csv", "per_sequence.png"]


def test_no_plot_without_a_scored_sequence(tmp_path):
    scores = score_dataset("davis", "mask", [SequenceScore("x", error="no predictions")])
    assert scores.overall == {} and [p.name for p in write_report(scores, INFO, tmp_path)] == \
           ["scores.json", "scores.csv"]
    assert json.loads((tmp_path / "scores.json").read_text())["overall"] == {}


def test_the_table_prints_percentages_and_what_was_not_scored(tmp_path):
    console = Console(record=True, width=220)
    show_report(box_scores(), INFO, [tmp_path / "scores.json"], console)
    text = console.export_text()
    assert "lasot: test-micro" in text
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["bird-1"] == ["1", "80.0", "100.0", "90.0", ""]
    assert rows["cat-3"][:2] == ["", ""] and rows["cat-3"][-1] == "the video cannot be read"
    assert rows["overall (2 sequences)"] == ["2", "60.0", "50.0", "55.0", "1 of 3 sequences not scored"]
    assert text.splitlines()[:6] == ["dataset: /data/tiny (lasot)", "model: test-micro", "checkpoint: seeded stand-in",
                                     "precision: float32", "device: cpu", "date: 2025-01-02T03:04:05+00:00"]
    assert "per attribute" in text and text.splitlines()[-1] == f"wrote {tmp_path / 'scores.json'}"


def test_checkpoint_files_are_hashed(tmp_path, monkeypatch):
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"not really a checkpoint" * 1000)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert checkpoint_of(WeightsSource("file", str(checkpoint)), "test-micro") == (str(checkpoint), digest)
    assert checkpoint_of(WeightsSource("seeded", seed=3), "test-micro") == (WeightsSource("seeded", seed=3).describe(),
                                                                          None)
    assert checkpoint_of(WeightsSource("hub"), "test-micro") == ("test-micro has no official checkpoint", None)

    class Official:
        hub = HubConfig("owner/repo", "model.pt")

    monkeypatch.setattr(report, "load_config", lambda model: Official)
    cache = {}
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo_id, filename: cache.get(filename))
    assert checkpoint_of(WeightsSource("hub"), "official") == ("hf://owner/repo/model.pt", None)  # not downloaded
    cache["model.pt"] = str(checkpoint)
    assert checkpoint_of(WeightsSource("hub"), "official") == ("hf://owner/repo/model.pt", digest)


def test_precision_follows_the_devices():
    assert precision_of(["cuda:0", "cuda:1"]) == "bfloat16"
    assert precision_of(["cpu"]) == "float32"
    assert precision_of(["cpu", "cuda:0"]) == "bfloat16/float32"
    assert precision_of([]) == "bfloat16 on CUDA, float32 on the CPU"  # Ray: whatever each actor has
