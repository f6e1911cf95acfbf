"""Where model weights come from: the official checkpoints on the Hugging Face Hub, a local checkpoint
file, or deterministic untrained stand-in weights ("seeded") for tests and offline demos.

The `SAM2PLUS_WEIGHTS` environment variable selects the source for the app and the CLI:
``hub`` (default), a checkpoint path, or ``seeded[:SEED]``.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from .config import ModelConfig

WEIGHTS_ENV = "SAM2PLUS_WEIGHTS"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, downloaded or loaded. `for_settings` says the same to whoever runs
    the app, with the fix through the SAM2PLUS_WEIGHTS setting only (the message may also name the Python API's
    checkpoint=...)."""

    def __init__(self, message: str, for_settings: Optional[str] = None) -> None:
        super().__init__(message)
        self.for_settings = for_settings or message

    def __reduce__(self):  # picklable with both texts (an error may cross to another process on ZeroGPU)
        return type(self), (str(self), self.for_settings)


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "hub", "file", "seeded" or "untrained"
    path: Optional[str] = None
    seed: int = 0

    @property
    def is_trained(self) -> bool:
        return self.kind in ("hub", "file")

    def describe(self) -> str:
        if self.kind == "seeded":
            return f"UNTRAINED stand-in weights (seeded:{self.seed}) - results are meaningless, for tests only"
        if self.kind == "untrained":
            return "UNTRAINED randomly initialised weights - results are meaningless"
        if self.kind == "file":
            return f"checkpoint file {self.path}"
        return "official checkpoint from the Hugging Face Hub"


def parse_weights_spec(spec: Optional[str]) -> WeightsSource:
    """`hub`, a checkpoint path, `seeded` or `seeded:SEED` (the `SAM2PLUS_WEIGHTS` values)."""
    spec = (spec or "hub").strip()
    if spec == "hub":
        return WeightsSource("hub")
    if spec == "seeded" or spec.startswith("seeded:"):
        _, _, seed = spec.partition(":")
        try:
            return WeightsSource("seeded", seed=int(seed) if seed else 0)
        except ValueError:
            raise ValueError(f"{WEIGHTS_ENV}={spec!r}: the seed after 'seeded:' must be an integer") from None
    return WeightsSource("file", path=spec)


def weights_from_env() -> WeightsSource:
    return parse_weights_spec(os.environ.get(WEIGHTS_ENV))


def seeded_tensor(key: str, shape, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """A tensor determined only by (key, shape, seed): the parity goldens' stand-in weight rule.

    Norm scales ~ 1 + 0.1 N, biases and other vectors ~ 0.05 N, embeddings with a leading 1 ~ 0.1 N,
    matrices ~ N / sqrt(fan_in) (x3 for attention query/key projections so attention is selective),
    batch-norm running statistics plausible, integer tensors zero."""
    shape = tuple(int(s) for s in shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed * 1_000_003 + zlib.crc32(key.encode("utf-8")))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        t = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float32)
    elif leaf == "running_mean":
        t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float32)
    elif len(shape) <= 1:
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        t = 1.0 + 0.1 * noise if leaf == "weight" else 0.05 * noise
    elif shape[0] == 1:
        t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float32)
    else:
        fan_in = max(1, math.prod(shape) // shape[0])
        gain = 3.0 if key.endswith(("q_proj.weight", "k_proj.weight")) else 1.0
        t = gain * torch.randn(shape, generator=gen, dtype=torch.float32) / math.sqrt(fan_in)
    return t.to(dtype)


def seeded_state_dict(reference: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: seeded_tensor(k, v.shape, v.dtype, seed) for k, v in reference.items()}


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load every tensor or fail with a message naming the first mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [f"{k} {list(state_dict[k].shape)} != {list(own[k].shape)}"
                   for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = [f"{origin} does not match model {getattr(model, 'cfg', None) and model.cfg.name!r}:"]
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatches (first: {'; '.join(wrong_shape[:3])})")
        raise CheckpointError(" ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict of an official-format checkpoint (`{"model": state_dict}`) or a bare one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {e}") from None
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], Mapping):
        ckpt = ckpt["model"]
    if not isinstance(ckpt, Mapping) or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointError(f"{path} holds no state dict (expected {{'model': {{name: tensor}}}})")
    return dict(ckpt)


def download_checkpoint(cfg: ModelConfig) -> str:
    """Path of the model's official checkpoint in the Hugging Face cache, downloading it if needed
    (honours HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE)."""
    if cfg.hub is None:
        raise CheckpointError(f"{cfg.name} is a model for tests: it has no official checkpoint. Use "
                              f"{WEIGHTS_ENV}=seeded (or checkpoint='seeded') or a checkpoint file of its shapes.",
                              f"{cfg.name} is a model for tests: it has no official checkpoint. Set "
                              f"{WEIGHTS_ENV}=seeded or to a checkpoint file of its shapes.")
    repo, filename = cfg.hub.repo_id, cfg.hub.filename
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    except ImportError:
        raise _not_downloadable(f"huggingface_hub is not installed, so {repo} cannot be downloaded.", cfg) from None
    files = [*cfg.hub.companions, filename]
    cached = [try_to_load_from_cache(repo_id=repo, filename=name) for name in files]
    if all(isinstance(path, str) for path in cached):
        return cached[-1]
    if constants.HF_HUB_OFFLINE:
        raise _not_downloadable(f"{repo}/{filename} is not in the Hugging Face cache and HF_HUB_OFFLINE is set.", cfg)
    unreachable = _unreachable_reason(constants.ENDPOINT)
    if unreachable:
        # fail at once instead of after the hub client's retries
        raise _not_downloadable(f"cannot reach {constants.ENDPOINT} ({unreachable}) to download {repo}/{filename}.",
                                cfg)
    try:
        return [hf_hub_download(repo_id=repo, filename=name, etag_timeout=5) for name in files][-1]
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise _not_downloadable(f"cannot get the {cfg.name} checkpoint {repo}/{filename} from the Hugging Face Hub "
                                f"({e.__class__.__name__}: {reason[:200]}).", cfg) from None


def _not_downloadable(problem: str, cfg: ModelConfig) -> CheckpointError:
    """`problem` with how to get the checkpoint another way: through the Python API or the setting."""
    repo, filename = cfg.hub.repo_id, cfg.hub.filename
    if cfg.hub.companions:  # a transformers model folder
        files = " and ".join([*cfg.hub.companions, filename])
        fetch = f"Download {files} from https://huggingface.co/{repo} into one folder on a machine with internet access"
        filename = "folder"
    else:
        fetch = f"Download {filename} from https://huggingface.co/{repo} on a machine with internet access"
    return CheckpointError(
        f"{problem} {fetch}, then pass its path as checkpoint=... (or set {WEIGHTS_ENV}=/path/to/{filename}); "
        f"for untrained test weights set {WEIGHTS_ENV}=seeded.",
        f"{problem} {fetch} and set {WEIGHTS_ENV}=/path/to/{filename}, or set {WEIGHTS_ENV}=seeded for untrained "
        "test weights; then restart the app.")


@dataclass(frozen=True)
class HubAccess:
    """Whether the official checkpoints of some models can be had here (`hub_access`)."""

    cached: tuple[str, ...]  # the models whose checkpoint is in the local Hugging Face cache
    missing: tuple[str, ...]  # the others
    blocked: Optional[str] = None  # why the missing ones cannot be downloaded; None when the hub answers

    @property
    def usable(self) -> bool:
        return not self.missing or self.blocked is None


def hub_access(configs: Sequence[ModelConfig], timeout: float = 1.0) -> HubAccess:
    """Which of the models' official checkpoints are in the local cache (no network), and, when some are not,
    whether they can be downloaded: HF_HUB_OFFLINE, or a TCP connection to the hub within `timeout` seconds."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        return HubAccess((), tuple(cfg.name for cfg in configs), "huggingface_hub is not installed")
    cached = tuple(cfg.name for cfg in configs if cfg.hub is not None and all(
        isinstance(try_to_load_from_cache(repo_id=cfg.hub.repo_id, filename=name), str)
        for name in (*cfg.hub.companions, cfg.hub.filename)))
    missing = tuple(cfg.name for cfg in configs if cfg.name not in cached)
    if not missing:
        return HubAccess(cached, missing)
    if constants.HF_HUB_OFFLINE:
        return HubAccess(cached, missing, "HF_HUB_OFFLINE is set")
    unreachable = _unreachable_reason(constants.ENDPOINT, timeout)
    return HubAccess(cached, missing, None if unreachable is None else f"cannot reach {constants.ENDPOINT}: "
                                                                       f"{unreachable}")


def _unreachable_reason(endpoint: str, timeout: float = 3.0) -> Optional[str]:
    """Why a TCP connection to the hub endpoint fails within `timeout` seconds, or None if it opens."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{e.__class__.__name__}: {e}"


def apply_weights(model: nn.Module, source: WeightsSource) -> None:
    """Fill a freshly built model from a weights source."""
    if source.kind == "untrained":
        return
    if source.kind == "seeded":
        model.load_state_dict(seeded_state_dict(model.state_dict(), source.seed), strict=True)
        return
    path = download_checkpoint(model.cfg) if source.kind == "hub" else source.path
    load_state_dict_strict(model, read_checkpoint(path), origin=f"checkpoint {path}")
