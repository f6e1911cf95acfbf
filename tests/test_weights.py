"""Checkpoints: strict loading of official-format files, clear errors, the hub path without network,
the SAM2PLUS_WEIGHTS switch, and the stand-in weight rule."""

import importlib.util
import time

import pytest
import torch

from sam2_plus import CheckpointError, build_model, build_video_predictor
from sam2_plus.config import MODEL_CONFIG_FILES, load_config
from sam2_plus.weights import (
    WeightsSource,
    download_checkpoint,
    parse_weights_spec,
    seeded_state_dict,
    weights_from_env,
)


@pytest.fixture(scope="module")
def seeded_tiny():
    return build_model("sam2.1-tiny", checkpoint="seeded:3", device="cpu")


def test_checkpoint_file_round_trip(tmp_path, seeded_tiny):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": seeded_tiny.state_dict()}, path)
    loaded = build_model("sam2.1-tiny", checkpoint=str(path), device="cpu")
    for (k, a), (k2, b) in zip(seeded_tiny.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    # a bare state dict works too, and so does the predictor builder
    torch.save(seeded_tiny.state_dict(), tmp_path / "bare.pt")
    pred = build_video_predictor("sam2.1-tiny", checkpoint=str(tmp_path / "bare.pt"), device="cpu")
    assert torch.equal(pred.model.no_mem_embed, seeded_tiny.no_mem_embed)


def test_mismatched_checkpoint_names_the_first_keys(tmp_path, seeded_tiny):
    sd = dict(seeded_tiny.state_dict())
    sd.pop("no_mem_embed")
    sd["extra.weight"] = torch.zeros(1)
    sd["maskmem_tpos_enc"] = torch.zeros(3, 1, 1, 64)
    path = tmp_path / "bad.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError) as err:
        build_model("sam2.1-tiny", checkpoint=str(path), device="cpu")
    msg = str(err.value)
    assert "1 missing keys (first: no_mem_embed)" in msg
    assert "1 unexpected keys (first: extra.weight)" in msg
    assert "maskmem_tpos_enc [3, 1, 1, 64] != [7, 1, 1, 64]" in msg
    # a model of another size does not load either
    with pytest.raises(CheckpointError, match="missing keys"):
        build_model("sam2.1-small", checkpoint=str(tmp_path / "bad.pt"), device="cpu")


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        build_model("sam2.1-tiny", checkpoint=str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        build_model("sam2.1-tiny", checkpoint=str(junk))
    torch.save({"model": [1, 2, 3]}, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        build_model("sam2.1-tiny", checkpoint=str(tmp_path / "list.pt"))


def test_hub_offline_and_unreachable_fail_fast_with_instructions(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    cfg = load_config("sam2++")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE") as err:
        download_checkpoint(cfg)
    assert "checkpoint_phase123.pt" in str(err.value) and "SAM2PLUS_WEIGHTS" in str(err.value)
    # no network: a loopback port nobody listens on stands for the unreachable hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="cannot reach") as err:
        build_video_predictor("sam2.1-tiny", checkpoint="hub", device="cpu")
    assert time.monotonic() - start < 30
    assert "https://huggingface.co/facebook/sam2.1-hiera-tiny" in str(err.value)


def test_hub_uses_the_cache(monkeypatch, tmp_path, seeded_tiny):
    from huggingface_hub import constants

    # lay out a cache entry the way huggingface_hub does, then load through checkpoint="hub" offline
    repo_dir = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    snap = repo_dir / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    torch.save({"model": seeded_tiny.state_dict()}, snap / "sam2.1_hiera_tiny.pt")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    import huggingface_hub.file_download as fd

    if hasattr(fd, "HF_HUB_CACHE"):
        monkeypatch.setattr(fd, "HF_HUB_CACHE", str(tmp_path))
    model = build_model("sam2.1-tiny", checkpoint="hub", device="cpu")
    assert torch.equal(model.no_mem_embed, seeded_tiny.no_mem_embed)


def test_weights_switch(monkeypatch):
    assert parse_weights_spec(None) == WeightsSource("hub")
    assert parse_weights_spec("seeded") == WeightsSource("seeded", seed=0)
    assert parse_weights_spec("seeded:7") == WeightsSource("seeded", seed=7)
    assert parse_weights_spec("/x/y.pt") == WeightsSource("file", path="/x/y.pt")
    with pytest.raises(ValueError, match="seed"):
        parse_weights_spec("seeded:abc")
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded:2")
    src = weights_from_env()
    assert src.kind == "seeded" and not src.is_trained and "UNTRAINED" in src.describe()


def test_seeded_rule_matches_the_goldens(shared_dir):
    spec = importlib.util.spec_from_file_location("golden_seeded", shared_dir / "golden" / "seeded_weights.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    reference = build_model("sam2++", checkpoint=None, device="cpu").state_dict()
    ours, theirs = seeded_state_dict(reference, seed=5), golden.seeded_state_dict(reference, seed=5)
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_checkpoint_env_reads_the_switch(monkeypatch, seeded_tiny):
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded:3")
    model = build_model("sam2.1-tiny", checkpoint="env", device="cpu")
    assert torch.equal(model.maskmem_tpos_enc, seeded_tiny.maskmem_tpos_enc)


def _official(count: int):
    """The first `count` official models' configs after SAM 2++ (SAM 2.1 tiny, small, ...), taken from the config
    table: these tests build no network (tests/conftest.py marks a test that names a real model `model`)."""
    return [load_config(name) for name in list(MODEL_CONFIG_FILES)[1:1 + count]]


def _empty_hub_cache(monkeypatch, tmp_path, offline: bool = False):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


def test_an_unavailable_checkpoint_says_the_setting_without_the_python_api(monkeypatch, tmp_path):
    """The message names checkpoint=... for the Python API; `for_settings` (what the app shows) names only
    SAM2PLUS_WEIGHTS and its values. Both survive pickling."""
    import pickle

    from sam2_plus import weights

    _empty_hub_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: "test: no network")
    (tiny,) = _official(1)
    with pytest.raises(CheckpointError) as err:
        download_checkpoint(tiny)
    error = err.value
    assert "cannot reach" in str(error) and "checkpoint=..." in str(error)
    assert error.for_settings.startswith("cannot reach https://huggingface.co (test: no network) to download "
                                         "facebook/sam2.1-hiera-tiny/sam2.1_hiera_tiny.pt.")
    assert "checkpoint=" not in error.for_settings
    assert "set SAM2PLUS_WEIGHTS=/path/to/sam2.1_hiera_tiny.pt, or set SAM2PLUS_WEIGHTS=seeded" in error.for_settings
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.for_settings) == (str(error), error.for_settings)
    with pytest.raises(CheckpointError) as err:
        download_checkpoint(load_config("test-micro"))
    assert "checkpoint=" not in err.value.for_settings and "SAM2PLUS_WEIGHTS=seeded" in err.value.for_settings
    assert CheckpointError("plain").for_settings == "plain"


def test_hub_access_looks_in_the_cache_before_the_network(monkeypatch, tmp_path):
    from sam2_plus import weights

    configs = _official(2)
    tiny, small = (cfg.name for cfg in configs)
    asked = []

    def unreachable(endpoint, timeout=3.0):
        asked.append(timeout)
        return "test: no network"

    monkeypatch.setattr(weights, "_unreachable_reason", unreachable)
    _empty_hub_cache(monkeypatch, tmp_path)
    access = weights.hub_access(configs)
    assert access == weights.HubAccess((), (tiny, small),
                                       "cannot reach https://huggingface.co: test: no network")
    assert not access.usable and asked == [1.0]  # one short connection attempt
    _empty_hub_cache(monkeypatch, tmp_path, offline=True)
    assert weights.hub_access(configs).blocked == "HF_HUB_OFFLINE is set" and len(asked) == 1  # no network
    monkeypatch.setattr(weights, "_unreachable_reason", lambda endpoint, timeout=3.0: None)
    _empty_hub_cache(monkeypatch, tmp_path)
    assert weights.hub_access(configs).usable
    # one checkpoint in the cache (laid out as huggingface_hub does): it is found without asking the network
    repo_dir = tmp_path / "hf-cache" / "models--facebook--sam2.1-hiera-tiny"
    (repo_dir / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    (repo_dir / "snapshots" / ("0" * 40) / "sam2.1_hiera_tiny.pt").write_bytes(b"stand-in")
    assert weights.hub_access(configs[:1]) == weights.HubAccess((tiny,), ())
    monkeypatch.setattr(weights, "_unreachable_reason", unreachable)
    partly = weights.hub_access(configs)
    assert partly.cached == (tiny,) and partly.missing == (small,) and not partly.usable
