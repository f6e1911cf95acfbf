"""The app's main process on a ZeroGPU Space, emulated on the CPU: run as a program (a fresh process), it
prepares the models as app.py does on ZeroGPU, then runs two previews and one tracking job through app.py's
GPU functions, each in a worker forked from it (as `spaces` runs a `@spaces.GPU` call), and prints one JSON
line: the processes that read the checkpoint, and what each call returned.

    python tests/zero_gpu_emulation.py VIDEO JOB_DIR READS_LOG [--unsafe]

SAM2PLUS_WEIGHTS names the checkpoint file. --unsafe skips keeping the main process fork-safe (one CPU thread),
to show what that prevents: the first worker hangs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORKER_TIMEOUT = 120.0
MODEL = "sam2.1-tiny"


def count_checkpoint_reads(log: str) -> None:
    from sam2_plus import weights

    read = weights.read_checkpoint

    def counted(path):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return read(path)

    weights.read_checkpoint = counted


def in_forked_worker(function, *args, timeout: float = WORKER_TIMEOUT):
    """function(*args) in a process forked from this one, the arguments pickled on the way as `spaces` sends
    them: ("ok", result), ("error", traceback) or ("hung", None)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    pickled = pickle.dumps(args)

    def child():
        try:
            send.send(("ok", function(*pickle.loads(pickled))))
        except BaseException:  # noqa: BLE001 - reported to the parent
            send.send(("error", traceback.format_exc()))

    worker = context.Process(target=child, daemon=True)
    worker.start()
    if not receive.poll(timeout):
        worker.kill()
        return "hung", None
    outcome = receive.recv()
    worker.join(10)
    return outcome


def main(argv: list[str]) -> dict:
    video, job_dir, reads_log = argv[:3]
    unsafe = "--unsafe" in argv
    count_checkpoint_reads(reads_log)
    import app
    from sam2_plus.app import hardware
    from sam2_plus.app.plan import plan_job
    from sam2_plus.provider import shared_models
    from sam2_plus.service import prepare_request

    if unsafe:
        hardware._stay_fork_safe = lambda: None
    started = hardware.prepare_models([MODEL], zero_gpu=True)
    prompt = json.dumps({"objects": [{"id": 1, "task": "mask", "prompts": [{"frame": 0, "box": [8, 8, 40, 40]}]}]})
    options = json.dumps({"model": MODEL, "motion_aware": False})
    timeout = 15.0 if unsafe else WORKER_TIMEOUT
    # checked in the main process, as the app's handlers check them before calling a GPU function
    job = plan_job(video, prompt, options, app.LIMITS).job_spec(job_dir, Path(job_dir) / "stop")
    one_prompt = prepare_request(video, prompt, model=MODEL)
    models = shared_models()  # the server's provider, which the GPU functions get as an argument
    track = lambda spec, models: list(app.gpu_job(spec, models))[-1].result.frames_done  # noqa: E731
    preview = lambda request, models: app.gpu_preview(request, None, models).record.frame_idx  # noqa: E731
    calls = {}
    for name, call, argument in (("preview 1", preview, one_prompt), ("preview 2", preview, one_prompt),
                                 ("tracking", track, job)):
        calls[name] = list(in_forked_worker(call, argument, models, timeout=timeout))
        if calls[name][0] != "ok":
            break
    return {"main_pid": os.getpid(), "built": list(started.built),
            "reads": Path(reads_log).read_text().split(), "calls": calls}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
