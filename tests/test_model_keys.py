"""The model's state dict has exactly the official checkpoints' keys and shapes (all five models); the micro test
model has the same keys in tiny shapes."""

import json
import re

import pytest
import torch

from sam2_plus.config import load_config
from sam2_plus.modeling.sam2_model import SAM2Model

MANIFESTS = {
    "sam2++": "sam2plus_hiera_b+.json",
    "sam2.1-tiny": "sam2.1_hiera_t.json",
    "sam2.1-small": "sam2.1_hiera_s.json",
    "sam2.1-base-plus": "sam2.1_hiera_b+.json",
    "sam2.1-large": "sam2.1_hiera_l.json",
}


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_state_dict_matches_manifest(name, shared_dir):
    manifest = json.loads((shared_dir / "golden" / "manifests" / MANIFESTS[name]).read_text())
    expected = {k: list(v) for k, v in manifest["keys"].items()}
    got = {k: list(v.shape) for k, v in SAM2Model(load_config(name)).state_dict().items()}
    assert sorted(set(expected) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(expected)) == [], "unexpected keys"
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert wrong == {}
    assert len(got) == manifest["num_tensors"]
    assert sum(torch.Size(s).numel() for s in got.values()) == manifest["num_elements"]


def test_the_micro_model_has_the_real_keys_in_tiny_shapes(shared_dir):
    """configs/test-micro.yaml: every tensor of SAM 2++'s checkpoint, same names and ranks, a fraction of the size
    (every block of the real network is there, one of each where the real one repeats it)."""
    manifest = json.loads((shared_dir / "golden" / "manifests" / "sam2plus_hiera_b+.json").read_text())
    real = {k: list(v) for k, v in manifest["keys"].items()}
    micro = SAM2Model(load_config("test-micro"))
    got = {k: list(v.shape) for k, v in micro.state_dict().items()}

    def block(key: str) -> str:  # the key with its repeat indices dropped: trunk.blocks.7.mlp -> trunk.blocks.N.mlp
        return re.sub(r"\.\d+(?=\.)", ".N", key)

    assert {block(k) for k in got} == {block(k) for k in real}
    ranks = {block(k): len(shape) for k, shape in got.items()}
    assert len(got) < len(real) and ranks == {block(k): len(shape) for k, shape in real.items()}
    assert sum(torch.Size(s).numel() for s in got.values()) < manifest["num_elements"] / 50
    assert micro.cfg.hub is None and micro.image_size == 128


def test_the_micro_model_has_no_official_checkpoint():
    from sam2_plus import build_model
    from sam2_plus.weights import CheckpointError

    with pytest.raises(CheckpointError, match="test-micro is a model for tests: it has no official checkpoint"):
        build_model("test-micro", checkpoint="hub", device="cpu")
