"""Everything one GPU can tell about this project in about ten minutes, in one run.

From a fresh clone on a machine with an NVIDIA GPU (../shared beside the clone holds the goldens and clips):

    pip install -r requirements.txt            # PyTorch with CUDA; nvcc and ninja for the CUDA kernel
    pip install pytest hypothesis scipy        # for the CUDA unit tests
    python bench/gpu_check.py                  # --budget-s 480 --out results.jsonl
    python bench/gpu_check.py --golden DIR --video CLIP.mp4   # goldens / a 720p clip elsewhere

Sections, in this order:
  environment  the GPU, PyTorch, CUDA, and whether the CUDA kernel's tool chain is present
  cuda_tests   every test marked `cuda` (pytest -m cuda)
  parity       every golden case (../shared/golden/cases and tests/parity_cases) on CUDA: in float32 (TF32 off)
               the distance to the goldens, which were made on the CPU, against the runner's tolerances; in
               bfloat16 the agreement of the mask pixels with the goldens on the first tracked frame (the
               check, as tests/test_fast_mode.py on the CPU), and on every frame (reported)
  fps          frames per second of tracking, SAM 2.1 tiny, SAM 2.1 base+ and SAM 2++ with 1, 3 and 16 objects
               on the 720p clip (stand-in weights: speed only)
  memory       peak GPU memory while tracking 1 object with SAM 2++ through 300 and 1800 frames (the clip looped)
  app          one tracking job through the app: /track through gradio_client when Gradio is installed, else
               the app's job runner (the body of /track's GPU function)
  reference    Meta's own sam2 package on the same clip, device and precision (bench/gpu_reference.py): eager and
               vos_optimized, SAM 2.1 tiny / small / base+ / large, 1, 3 and 16 objects; ours / Meta's
  fps_compiled the fps table again with compile_image_encoder (last: compiling takes the longest)
Each figure is one JSON line on stdout (and in --out); a table follows at the end. The budget is hard: what
does not fit is reported as skipped, and when time runs out mid-step the table of what was measured is printed
and the program exits. Exit status: 0 all checks passed, 1 a check failed, 2 no CUDA (one line, at once), 3 out
of time.

    python bench/gpu_check.py --dry-run        # on the CPU: SAM 2.1 tiny, 2 frames, every section (CI runs it);
                                               # one parity case in float32; bfloat16 and compiling are skipped
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# the test files holding tests marked `cuda` (tests/test_gpu_check.py keeps this list complete)
CUDA_TEST_FILES = ("tests/test_gpu_path.py", "tests/test_postprocess.py", "tests/test_predictor_api.py")
FPS_MODELS = ("sam2.1-tiny", "sam2.1-base-plus", "sam2++")
FPS_OBJECTS = (1, 3, 16)
FPS_WARMUP, FPS_FRAMES = 3, 20
MEMORY_MODEL, MEMORY_MARKS = "sam2++", (300, 1800)
DRY_RUN_MODEL = "test-micro"  # configs/test-micro.yaml
BF16_MIN_AGREEMENT = 0.99  # mask pixels equal to the golden's, as fast mode is held to on the CPU
EXIT_NO_CUDA, EXIT_OUT_OF_TIME = 2, 3


@dataclass
class Figure:
    section: str
    name: str
    value: Any = None
    unit: str = ""
    ok: Optional[bool] = None  # None: a measurement, not a check
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"section": self.section, "name": self.name, "value": self.value, "unit": self.unit, "ok": self.ok,
                **self.detail}


class Report:
    """The figures so far: printed as JSON lines when added, as a table at the end (also by the deadline)."""

    def __init__(self, out: Optional[Path]) -> None:
        self.figures: list[Figure] = []
        self._lock = threading.Lock()
        self._out = open(out, "w") if out else None
        self.closed = False

    def add(self, figure: Figure) -> Figure:
        with self._lock:
            if self.closed:
                return figure
            self.figures.append(figure)
            line = json.dumps(figure.to_json(), default=str)
            print(line, flush=True)
            if self._out:
                self._out.write(line + "\n")
                self._out.flush()
        return figure

    def finish(self, note: str = "") -> int:
        with self._lock:
            if self.closed:
                return 0
            self.closed = True
            print(self.table() + (f"\n{note}" if note else ""), flush=True)
            if self._out:
                self._out.close()
        failed = [f for f in self.figures if f.ok is False]
        return 1 if failed else 0

    def table(self) -> str:
        rows = [("section", "figure", "value", "check")]
        for f in self.figures:
            value = f"{f.value:.4g}" if isinstance(f.value, float) else str(f.value)
            rows.append((f.section, f.name, f"{value} {f.unit}".strip(), {True: "ok", False: "FAIL", None: ""}[f.ok]))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


class Budget:
    """Seconds left; past the deadline a watchdog prints the table and ends the program."""

    def __init__(self, seconds: float, report: Report) -> None:
        self.deadline = time.monotonic() + seconds
        self._watchdog = threading.Timer(seconds, self._expire, args=(report,))
        self._watchdog.daemon = True
        self._watchdog.start()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds

    @staticmethod
    def _expire(report: Report) -> None:
        report.finish("out of time: the budget ended during the step after the last figure")
        os._exit(EXIT_OUT_OF_TIME)

    def cancel(self) -> None:
        self._watchdog.cancel()


@dataclass(frozen=True)
class Plan:
    """What each section covers: the full check on a GPU, or --dry-run's smallest version on the CPU."""

    device: str
    golden: Path  # the folder of run_case.py and cases/
    golden_cases: tuple[Path, ...]
    video: Optional[Path]
    fps_models: tuple[str, ...] = FPS_MODELS
    fps_objects: tuple[int, ...] = FPS_OBJECTS
    fps_frames: int = FPS_FRAMES
    fps_warmup: int = FPS_WARMUP
    compile: bool = True
    memory_model: str = MEMORY_MODEL
    memory_marks: tuple[int, ...] = MEMORY_MARKS
    app_frames: Optional[int] = None  # None: the whole clip
    app_model: str = "sam2++"
    precisions: tuple[str, ...] = ("float32", "bfloat16")
    reference_models: tuple[str, ...] = ("sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large")
    reference_modes: tuple[bool, ...] = (False, True)  # vos_optimized

    @classmethod
    def create(cls, args: argparse.Namespace) -> "Plan":
        cases = _golden_cases(args.golden)
        video = args.video if args.video.is_file() else None
        if not args.dry_run:
            return cls("cuda", args.golden, cases, video)
        smallest = (min(cases, key=_case_cost),) if cases else ()
        # the dry run checks the script, not the speed: the micro model outside the parity section
        return cls("cpu", args.golden, smallest, video, fps_models=(DRY_RUN_MODEL,),
                   fps_objects=(1,), fps_frames=1, fps_warmup=1, compile=False,
                   memory_model=DRY_RUN_MODEL, memory_marks=(1, 2), app_frames=2, precisions=("float32",),
                   app_model=DRY_RUN_MODEL, reference_models=("sam2.1-tiny",), reference_modes=(False,))


def _golden_cases(golden: Path) -> tuple[Path, ...]:
    own = REPO / "tests" / "parity_cases"
    found = sorted((golden / "cases").glob("*/expected.npz")) + sorted(own.glob("*/expected.npz"))
    return tuple(p.parent for p in found)


def _case_cost(case: Path) -> tuple[int, int]:
    config = json.loads((case / "case.json").read_text())
    return (0 if "sam2.1_hiera_t" in config["config"] else 1, len(list((case / "frames").iterdir())))


# --------------------------------------------------------------------------- sections


def environment(plan: Plan, report: Report, budget: Budget) -> None:
    import torch

    from sam2_plus.postprocess import missing_build_tools

    detail = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if plan.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        detail.update(capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                      multiprocessors=props.multi_processor_count, cudnn=torch.backends.cudnn.version())
        report.add(Figure("environment", "device", torch.cuda.get_device_name(0), detail=detail))
    else:
        report.add(Figure("environment", "device", "cpu (dry run)", detail=detail))
    missing = missing_build_tools()
    report.add(Figure("environment", "CUDA kernel tool chain", "missing: " + ", ".join(missing) if missing else
                      "nvcc, ninja, c++"))


def cuda_tests(plan: Plan, report: Report, budget: Budget) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *CUDA_TEST_FILES]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=max(budget.left() - 5, 1))
    except subprocess.TimeoutExpired:
        report.add(Figure("cuda_tests", "pytest -m cuda", "timed out", ok=False))
        return
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    failures = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    report.add(Figure("cuda_tests", "pytest -m cuda", summary, ok=done.returncode == 0,
                      detail={"seconds": round(time.perf_counter() - started, 1), "failures": failures[:20]}))


def parity(plan: Plan, report: Report, budget: Budget) -> None:
    import torch

    runner = _parity_runner(plan.golden, report)
    if runner is None:
        return
    if plan.precisions == ("float32",):
        report.add(Figure("parity", "bfloat16", "skipped in --dry-run (tests/test_fast_mode.py checks it on the CPU)"))
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # float32 as the goldens
    try:
        for case in plan.golden_cases:
            for precision in plan.precisions:
                if not budget.allows(20):
                    report.add(Figure("parity", f"{case.name} {precision}", "skipped (budget)"))
                    continue
                _parity_case(runner, case, precision, plan.device, report)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def _parity_runner(golden: Path, report: Report):
    import importlib.util

    path = golden / "run_case.py"
    if not path.is_file():
        report.add(Figure("parity", "runner", f"skipped: {path} is missing"))
        return None
    spec = importlib.util.spec_from_file_location("golden_run_case", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parity_case(runner, case: Path, precision: str, device: str, report: Report) -> None:
    from functools import partial

    from sam2_plus import build_video_predictor

    started = time.perf_counter()
    try:
        got = runner.execute(str(case), build=partial(build_video_predictor, precision=precision), device=device)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        report.add(Figure("parity", f"{case.name} {precision}", f"error: {type(error).__name__}: {error}", ok=False))
        return
    seconds = round(time.perf_counter() - started, 1)
    distances = _distances(case, got)
    if precision == "float32":
        errors = runner.compare(str(case), got)
        report.add(Figure("parity", f"{case.name} float32", f"{len(errors)} mismatches", ok=not errors,
                          detail={"seconds": seconds, **distances, "mismatches": errors[:10]}))
    else:
        agreement = _first_tracked_frame_agreement(case, got)
        report.add(Figure("parity", f"{case.name} bfloat16", agreement, "of mask pixels (first tracked frame)",
                          ok=agreement is not None and agreement >= BF16_MIN_AGREEMENT,
                          detail={"seconds": seconds, **distances}))


def _first_tracked_frame_agreement(case: Path, got: dict) -> Optional[float]:
    """Mask pixels equal to the golden's on the first frame the first propagation tracks (no prompt there):
    the frame fast mode is held to (tests/test_fast_mode.py); later frames inherit every earlier rounding."""
    import numpy as np

    steps = json.loads((case / "case.json").read_text())["steps"]
    first = next(i for i, step in enumerate(steps) if step["op"] == "propagate")
    prompted = {step["frame"] for step in steps[:first] if "frame" in step}
    expected = np.load(case / "expected.npz")
    for k in range(int(expected[f"s{first}_num_yields"])):
        key = f"s{first}_y{k}_"
        if int(expected[key + "frame"]) not in prompted:
            bits = key + "mask_bits"
            if bits not in got or got[bits].shape != expected[bits].shape:
                return None
            return round(1.0 - float(np.unpackbits(np.bitwise_xor(expected[bits], got[bits])).mean()), 6)
    return None


def _distances(case: Path, got: dict) -> dict:
    """The largest distance to the golden of each kind of key, over all steps and frames."""
    import numpy as np

    expected = np.load(case / "expected.npz")
    worst = {"logits_mean_abs_max": 0.0, "scores_abs_max": 0.0, "boxes_abs_max": 0.0}
    agreements = []
    for key in expected.files:
        if key.startswith(("state_", "frame0_")) or key not in got:
            continue
        e, g = expected[key], np.asarray(got[key])
        if e.shape != g.shape:
            continue
        if key.endswith("logits_sub4"):
            distance = float(np.abs(e.astype(np.float32) - g).mean())
            worst["logits_mean_abs_max"] = max(worst["logits_mean_abs_max"], distance)
        elif key.endswith("mask_bits"):
            agreements.append(1.0 - float(np.unpackbits(np.bitwise_xor(e, g)).mean()))
        elif key.endswith(("scores", "boxes")) and e.size:
            kind = "scores_abs_max" if key.endswith("scores") else "boxes_abs_max"
            worst[kind] = max(worst[kind], float(np.abs(e.astype(np.float64) - g).max()))
    return {**{k: round(v, 6) for k, v in worst.items()},
            "mask_agreement_min": round(min(agreements), 6) if agreements else None,
            "mask_agreement_mean": round(float(np.mean(agreements)), 6) if agreements else None}


def fps(plan: Plan, report: Report, budget: Budget) -> None:
    _fps_table(plan, report, budget, compiled=False)


def fps_compiled(plan: Plan, report: Report, budget: Budget) -> None:
    """Last: compiling costs the most time, and changes each network in place."""
    if not plan.compile:
        report.add(Figure("fps_compiled", "compiled",
                          "skipped in --dry-run (tests/test_gpu_path.py compiles on the CPU)"))
        return
    _fps_table(plan, report, budget, compiled=True)


def _fps_table(plan: Plan, report: Report, budget: Budget, compiled: bool) -> None:
    section = "fps_compiled" if compiled else "fps"
    frames = _clip_frames(plan, plan.fps_warmup + plan.fps_frames + 1, report, section)
    if frames is None:
        return
    for model in plan.fps_models:
        for objects in plan.fps_objects:
            name = f"{model} {objects} obj{' compiled' if compiled else ''}"
            if not budget.allows(90 if compiled else 20):
                report.add(Figure(section, name, "skipped (budget)"))
                continue
            report.add(_fps_run(_network(model, plan.device), frames, objects, compiled, plan, section, name))


_networks: dict = {}


def _network(model: str, device: str):
    """One network per model for the whole check (stand-in weights): building is not what is measured."""
    from sam2_plus import build_model

    if model not in _networks:
        _networks.clear()  # one at a time on the GPU
        _networks[model] = build_model(model, checkpoint="seeded:0", device=device, postprocessing=True)
    return _networks[model]


def _fps_run(net, frames: list, objects: int, compiled: bool, plan: Plan, section: str, name: str) -> Figure:
    import torch

    from _timing import object_boxes
    from sam2_plus.build import predictor_over

    predictor = predictor_over(net, compile_image_encoder=compiled)
    _reset_peak_memory(plan.device)
    height, width = frames[0].shape[:2]
    session = predictor.init_state(frames)
    started = time.perf_counter()
    for obj, box in enumerate(object_boxes(objects, height, width), start=1):
        predictor.add_new_points_or_box(session, 0, obj, box=box)
    times = []
    with torch.inference_mode():
        for result in predictor.propagate_in_video(session):
            times.append(time.perf_counter())
            if len(times) > plan.fps_warmup + plan.fps_frames:
                break
    measured = times[plan.fps_warmup:]
    rate = (len(measured) - 1) / (measured[-1] - measured[0]) if len(measured) > 1 else None
    return Figure(section, name, round(rate, 2) if rate else None, "frames/s",
                  detail={"video": f"{width}x{height}", "objects": objects, "compiled": compiled,
                          "first_frames_s": round(times[plan.fps_warmup - 1] - started, 2) if times else None,
                          "frames_measured": max(len(measured) - 1, 0), "precision": "auto (bfloat16 on CUDA)",
                          "batch": predictor.max_batch_objects, "peak_gpu_mib": _peak_memory_mib(plan.device)})


def memory(plan: Plan, report: Report, budget: Budget) -> None:
    import torch

    frames = _clip_frames(plan, None, report, "memory")
    if frames is None:
        return
    longest = max(plan.memory_marks)
    if not budget.allows(60):
        report.add(Figure("memory", f"{plan.memory_model} {longest} frames", "skipped (budget)"))
        return
    from sam2_plus.build import predictor_over

    predictor = predictor_over(_network(plan.memory_model, plan.device))
    looped = [frames[i % len(frames)] for i in range(longest + 1)]  # references: no copies of the frames
    session = predictor.init_state(looped)
    height, width = frames[0].shape[:2]
    predictor.add_new_points_or_box(session, 0, 1, box=[width // 3, height // 4, 2 * width // 3, 3 * height // 4])
    _reset_peak_memory(plan.device)
    started = time.perf_counter()
    with torch.inference_mode():
        for done, result in enumerate(predictor.propagate_in_video(session, max_frame_num_to_track=longest), 1):
            if done in plan.memory_marks:
                report.add(Figure("memory", f"{plan.memory_model} peak at {done} frames", _peak_memory_mib(plan.device),
                                  "MiB", detail={"video": f"{width}x{height}", "objects": 1,
                                                 "seconds": round(time.perf_counter() - started, 1)}))
            if not budget.allows(5):
                report.add(Figure("memory", f"stopped at frame {done}", "budget"))
                return


def reference(plan: Plan, report: Report, budget: Budget) -> None:
    """Meta's code side by side (bench/gpu_reference.py); ours / Meta's where fps measured the same run."""
    import gpu_reference

    missing = gpu_reference.meta_sam2_missing()
    if missing is not None:
        report.add(Figure("reference", "sam2", f"skipped: {missing}"))
        return
    frames = _clip_frames(plan, plan.fps_warmup + plan.fps_frames + 1, report, "reference")
    if frames is None:
        return
    _networks.clear()  # ours off the GPU while Meta's runs
    ours = {f.name: f.value for f in report.figures if f.section == "fps" and isinstance(f.value, float)}
    for model in plan.reference_models:
        for objects in plan.fps_objects:
            for optimized in plan.reference_modes:
                name = f"meta {model} {objects} obj{' vos_optimized' if optimized else ''}"
                if not budget.allows(120 if optimized else 30):
                    report.add(Figure("reference", name, "skipped (budget)"))
                    continue
                run = gpu_reference.run_meta(model, frames, objects, plan.device, optimized, plan.fps_warmup,
                                             plan.fps_frames, plan.golden)
                mine = ours.get(f"{model} {objects} obj") if not optimized else None
                ratio = round(mine / run["fps"], 3) if mine and run["fps"] else None
                report.add(Figure("reference", name, run.pop("fps"), "frames/s",
                                  detail={**run, "objects": objects, "ours_fps": mine, "ours_over_meta": ratio}))


def app(plan: Plan, report: Report, budget: Budget, via: str = "auto") -> None:
    import importlib.util
    import tempfile

    if plan.video is None:
        report.add(Figure("app", "tracking job", "skipped: no video"))
        return
    if not budget.allows(30):
        report.add(Figure("app", "tracking job", "skipped (budget)"))
        return
    os.environ.setdefault("SAM2PLUS_WEIGHTS", "seeded")
    with tempfile.TemporaryDirectory(prefix="gpu-check-app-") as folder:
        video = _app_video(plan, Path(folder))
        prompts, options = _app_request(plan)
        gradio = importlib.util.find_spec("gradio") is not None and via != "job"
        run = _track_via_gradio if gradio else _track_via_job_runner
        started = time.perf_counter()
        try:
            frames = run(video, prompts, options, Path(folder))
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            report.add(Figure("app", "tracking job", f"error: {type(error).__name__}: {error}", ok=False))
            return
        seconds = time.perf_counter() - started
        report.add(Figure("app", "/track via gradio_client" if gradio else "tracking job (app's job runner)",
                          round(frames / seconds, 2), "frames/s end to end", ok=frames > 0,
                          detail={"frames": frames, "seconds": round(seconds, 1), "objects": 2}))


def _app_request(plan: Plan) -> tuple[str, str]:
    """Two objects, a mask and a box (SAM 2++ on a GPU, the micro model in a dry run)."""
    from sam2_plus.config import load_config

    model = plan.app_model
    second_task = "box" if "box" in load_config(model).tasks else "mask"
    objects = [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [400, 180, 880, 540]}]},
               {"id": 2, "task": second_task, "prompts": [{"frame": 0, "box": [100, 100, 300, 400]}]}]
    return json.dumps({"objects": objects}), json.dumps({"model": model, "motion_aware": False})


def _app_video(plan: Plan, folder: Path) -> Path:
    if plan.app_frames is None:
        return plan.video
    from sam2_plus.media.decode import FrameSource
    from sam2_plus.media.encode import VideoWriter

    path = folder / "clip.mp4"
    with FrameSource(plan.video) as source:
        writer = VideoWriter(path, fps=source.info.fps, width=source.info.width, height=source.info.height)
        for i in range(plan.app_frames):
            writer.write(source[i])
        writer.close()
    return path


def _track_via_job_runner(video: Path, prompts: str, options: str, folder: Path) -> int:
    from sam2_plus.app.jobs import run_job
    from sam2_plus.jobs import JobSpec
    from sam2_plus.app.options import parse_options
    from sam2_plus.service import prepare_request

    chosen = parse_options(options)
    request = prepare_request(video, prompts, model=chosen.model, motion_aware=chosen.motion_aware)
    result = None
    for update in run_job(JobSpec("track", request).in_folder(folder / "job")):
        result = update.result or result
    if result is None or result.failed:
        raise RuntimeError(result.describe() if result else "the job gave no result")
    return result.frames_done


def _track_via_gradio(video: Path, prompts: str, options: str, folder: Path) -> int:
    import socket

    from gradio_client import Client, handle_file

    import app as space

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    space.launch(space.demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(folder / "downloads"))
        _, _, results_json = client.predict(handle_file(str(video)), prompts, options, api_name="/track")
        from sam2_plus.media.export import read_results_json

        return len(read_results_json(results_json)[1])
    finally:
        space.demo.close()


def _clip_frames(plan: Plan, count: Optional[int], report: Report, section: str) -> Optional[list]:
    """The clip's first `count` frames (all when None), decoded once for the whole check."""
    if plan.video is None:
        report.add(Figure(section, "video", "skipped: no video (--video)"))
        return None
    from sam2_plus.media.decode import FrameSource

    global _decoded
    with FrameSource(plan.video) as source:
        needed = len(source) if count is None else min(count, len(source))
        while len(_decoded) < needed:
            _decoded.append(source[len(_decoded)])
    return _decoded[:needed]


_decoded: list = []


def _reset_peak_memory(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib(device: str) -> Optional[float]:
    import torch

    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


SECTIONS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("environment", environment), ("cuda_tests", cuda_tests), ("parity", parity), ("fps", fps),
    ("memory", memory), ("app", app), ("reference", reference), ("fps_compiled", fps_compiled))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=480.0, help="hard time limit of the whole check (s)")
    ap.add_argument("--dry-run", action="store_true", help="on the CPU, smallest sizes: every section end to end")
    ap.add_argument("--golden", type=Path, default=SHARED / "golden", help="folder with cases/ (the goldens)")
    ap.add_argument("--video", type=Path, default=SHARED / "data" / "videos" / "01_dog.mp4", help="a 720p clip")
    ap.add_argument("--sections", nargs="+", choices=[name for name, _ in SECTIONS], default=None)
    ap.add_argument("--app-via", choices=["auto", "job"], default="auto",
                    help="auto: gradio_client when Gradio is installed; job: the app's job runner")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON lines here")
    args = ap.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing to check. "
              "Use --dry-run to exercise the check on the CPU.", file=sys.stderr)
        return EXIT_NO_CUDA
    report = Report(args.out)
    budget = Budget(args.budget_s, report)
    plan = Plan.create(args)
    for name, section in SECTIONS:
        if args.sections and name not in args.sections:
            continue
        try:
            section(plan, report, budget, args.app_via) if name == "app" else section(plan, report, budget)
        except Exception as error:  # noqa: BLE001 - one broken section must not hide the others
            report.add(Figure(name, "section", f"error: {type(error).__name__}: {error}", ok=False))
    budget.cancel()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
