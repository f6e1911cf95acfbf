"""The model's state dict has exactly the official checkpoints' keys and shapes (all five models)."""

import json

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
