"""What the app does, at start-up, for the hardware it runs on: a ZeroGPU Space, a dedicated GPU, or the CPU.

ZeroGPU (the `spaces` package, `SPACES_ZERO_GPU=true`): the main process has no GPU. `spaces` patches torch
there so that moving a tensor to "cuda" only records it; when the server starts, the recorded tensors are
packed, and every `@spaces.GPU` call runs in a worker process forked from the main process, which moves them
to the GPU it was given before running the call. A worker may serve several calls in a row, but nothing
guarantees it, so whatever a call builds inside a worker (a model, a cache) can be gone at the next call. So
every model the UI offers is built here, in the main process and before the server starts: on the CPU, the
checkpoint read once, then moved to "cuda" (recorded). Each GPU call then finds it on the GPU. The main
process also stays on one CPU thread: GNU OpenMP (PyTorch's CPU threads) is not fork-safe, and a forked
worker whose parent once ran a parallel CPU operation hangs at its own first one. So the main process never
starts OpenMP's threads, and each GPU function takes the machine's threads as it starts (`use_worker_threads`).

A dedicated GPU or the CPU: `spaces.GPU` does nothing and the app is one process, so each model is built on
its first use and kept for the life of the process (none is ever rebuilt); on a GPU the CUDA kernel of the
mask post-processing starts compiling in the background (on ZeroGPU too, where the tool chain exists).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from .. import postprocess
from ..provider import ModelCache, ModelKey, shared_models
from ..weights import CheckpointError

ZERO_GPU_ENV = "SPACES_ZERO_GPU"
WORKER_THREADS = torch.get_num_threads()  # PyTorch's default for this machine, before it is changed here

log = logging.getLogger(__name__)
_forking_main_process = False  # set in the main process of a ZeroGPU Space, inherited by its workers


def on_zero_gpu(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs on a ZeroGPU Space (the variable the `spaces` package reads)."""
    return env.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")


@dataclass(frozen=True)
class ModelsAtStart:
    """What `prepare_models` did: the models built now, and those that could not be (model -> why)."""

    built: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


def prepare_models(models: Iterable[str], zero_gpu: bool | None = None,
                   cache: ModelCache | None = None) -> ModelsAtStart:
    """Make every offered model one build per process in `cache` (default: the process's shared ModelCache, the
    one the app serves; see the module's doc). Call before the server starts. A model that cannot be built now
    (no checkpoint) is logged and left to its first call, which then says why to the user."""
    models = tuple(models)
    cache = cache or shared_models()
    cache.capacity = max(cache.capacity, len(models))  # none is ever evicted
    postprocess.start_cuda_extension_build()  # where CUDA and a compiler are present; never waited for
    if not (on_zero_gpu() if zero_gpu is None else zero_gpu):
        return ModelsAtStart()
    _stay_fork_safe()
    built, failed = [], {}
    for model in models:
        try:
            cache.preload(ModelKey.of(model))
            built.append(model)
        except (CheckpointError, ValueError, OSError) as error:
            failed[model] = str(error)
            log.warning("model %s is not preloaded: %s", model, error)
    return ModelsAtStart(tuple(built), failed)


def _stay_fork_safe() -> None:
    global _forking_main_process
    _forking_main_process = True
    torch.set_num_threads(1)


def use_worker_threads() -> None:
    """First thing in a GPU function: in a ZeroGPU worker (forked from a main process that never started
    OpenMP's threads), take the machine's CPU threads; elsewhere nothing changes."""
    if _forking_main_process and torch.get_num_threads() != WORKER_THREADS:
        torch.set_num_threads(WORKER_THREADS)
