"""The page's note on a CPU: which model tracks fastest there and a frame's cost (sam2_plus/app/cpu_speed.py),
measured once in the background with the micro models (stand-in weights)."""

from __future__ import annotations

import re

from sam2_plus.app.cpu_speed import CpuSpeed, CpuSpeedProbe, FrameCost, cpu_speed_probe
from sam2_plus.provider import ModelCache
from sam2_plus.weights import WeightsSource


def test_measures_the_stand_in_models_once_and_names_the_fastest():
    probe = cpu_speed_probe(ModelCache(), WeightsSource("seeded"))
    probe.on_cpu = True
    note = probe.note()
    fastest = re.search(r"\*\*(\S+)\*\* tracks fastest: about (\d+\.\d) s per frame", note)
    assert fastest and fastest.group(1) in ("test-edgetam", "test-micro"), note
    other = "test-micro" if fastest.group(1) == "test-edgetam" else "test-edgetam"
    assert f"{other} " in note
    assert probe.note() == note  # measured once


def test_fastest_first_and_no_note_on_a_gpu_or_after_a_failure():
    calls = []

    def measure():
        calls.append(1)
        return CpuSpeed((FrameCost("edgetam", 0.4), FrameCost("sam2.1-tiny", 2.5)))

    assert CpuSpeedProbe(measure, on_cpu=False).note() == "" and not calls
    assert "**edgetam** tracks fastest: about 0.4 s" in CpuSpeedProbe(measure, on_cpu=True).note()

    def fail():
        raise OSError("no weights here")

    assert "could not be measured (OSError: no weights here)" in CpuSpeedProbe(fail, on_cpu=True).note()


def test_a_page_load_does_not_wait_for_the_measurement_and_zero_gpu_measures_nothing(monkeypatch):
    import threading

    release = threading.Event()

    def measure():
        release.wait(10)
        return CpuSpeed((FrameCost("edgetam", 0.4),))

    probe = CpuSpeedProbe(measure, on_cpu=True)
    notes = probe.notes()
    assert "Measuring" in next(notes)
    release.set()
    assert "**edgetam** tracks fastest" in next(notes)
    assert list(CpuSpeedProbe(measure, on_cpu=True).notes())[-1].count("edgetam") == 1
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not CpuSpeedProbe(measure).on_cpu
