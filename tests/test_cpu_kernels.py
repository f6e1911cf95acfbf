"""The CPU inference paths of the fast bfloat16 mode (oneDNN products, fused GELU and residual, attention
over raw narrow values) compute the same function as the plain PyTorch layers they replace; float32 runs
the plain layers themselves (the reference's kernels, so its numbers bit for bit)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sam2_plus.modeling import attention as attention_module
from sam2_plus.modeling.attention import RoPEAttention, attention, chunked_attention, onednn_attention
from sam2_plus.modeling.common import MLP, Linear, onednn_dtype

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")


def _plain(linear: Linear) -> nn.Linear:
    plain = nn.Linear(linear.in_features, linear.out_features)
    plain.load_state_dict(linear.state_dict())
    return plain


@needs_onednn
def test_onednn_is_used_only_for_cpu_inference_in_bfloat16():
    x = torch.zeros(2, 3)
    with torch.inference_mode():
        assert onednn_dtype(x) is None  # float32 keeps PyTorch's kernels, as the reference
        assert onednn_dtype(x.bfloat16()) == torch.bfloat16
        assert onednn_dtype(x.half()) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert onednn_dtype(x) == torch.bfloat16
    assert onednn_dtype(x.bfloat16()) is None  # grad enabled: training keeps the autograd-aware layers


def _linear_case(gelu, with_residual, dtype=torch.float32):
    torch.manual_seed(0)
    linear = Linear(48, 80)
    x = torch.randn(2, 5, 7, 48).to(dtype)
    residual = torch.randn(2, 5, 7, 80).to(dtype) if with_residual else None
    plain = _plain(linear).to(dtype)
    expected = plain(x)
    expected = F.gelu(expected) if gelu else expected
    expected = expected + residual if with_residual else expected
    return linear, x, residual, expected.detach()


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
def test_float32_linear_is_nn_linear_bit_for_bit(gelu, with_residual):
    linear, x, residual, expected = _linear_case(gelu, with_residual)
    with torch.inference_mode():
        got = linear(x, gelu=gelu, residual=residual)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


@needs_onednn
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
def test_bfloat16_linear_matches_nn_linear_with_gelu_and_residual(gelu, with_residual):
    linear, x, residual, expected = _linear_case(gelu, with_residual, torch.bfloat16)
    with torch.inference_mode():
        got = linear(x, gelu=gelu, residual=residual)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


@needs_onednn
def test_linear_under_autocast_runs_in_bfloat16_like_nn_linear():
    torch.manual_seed(0)
    linear = Linear(64, 32)
    x = torch.randn(10, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = linear(x, gelu=True), F.gelu(_plain(linear)(x))
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_mlp_with_residual_equals_mlp_plus_residual():
    torch.manual_seed(0)
    mlp = MLP(16, 64, 16, 2, activation=nn.GELU)
    x, residual = torch.randn(3, 16), torch.randn(3, 16)
    expected = residual + mlp(x)  # grad enabled: the plain layers
    with torch.inference_mode():
        torch.testing.assert_close(mlp(x, residual=residual), expected, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 1, 300, 256, 700, 64), (1, 4, 70, 32, 90, 32), (2, 3, 33, 16, 20, 16)])
def test_onednn_attention_matches_sdpa(shape):
    b, h, nq, d, nk, dv = shape
    torch.manual_seed(0)
    q, k, v = torch.randn(b, h, nq, d), torch.randn(b, h, nk, d), torch.randn(b, h, nk, dv)
    scores = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    expected = scores @ v
    with torch.inference_mode():
        # small chunks so that several chunks and the last, shorter one are exercised
        got = onednn_attention(q, k, v, torch.float32, max_scores=1, min_rows=64)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(chunked_attention(q, k, v, max_scores=64 * nk), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(attention(q, k, v), expected, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_attention_only_for_few_heads_in_bfloat16(monkeypatch):
    calls = []
    monkeypatch.setattr(attention_module, "onednn_attention", lambda q, *a: calls.append(q.shape) or q)
    few, many = torch.randn(1, 2, 8, 4), torch.randn(1, attention_module.MAX_ONEDNN_HEADS + 1, 8, 4)
    with torch.inference_mode():
        attention(few, few, few)  # float32 keeps PyTorch's kernels (parity)
        attention(many.bfloat16(), many.bfloat16(), many.bfloat16())
        assert calls == []
        attention(few.bfloat16(), few.bfloat16(), few.bfloat16())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attention(few, few, few)
    assert calls == [few.shape, few.shape]


def _memory_cross_attention():
    torch.manual_seed(0)
    attn = RoPEAttention(64, 1, kv_in_dim=16, rope_k_repeat=True, feat_sizes=(8, 8)).eval()
    return attn, torch.randn(2, 64, 64), torch.randn(2, 3 * 64 + 4, 16)


def test_float32_memory_cross_attention_projects_values_first_like_the_reference():
    attn, q, memory = _memory_cross_attention()
    with torch.inference_mode():
        assert not attn._values_late(memory)
        got = attn(q, memory, memory, num_k_exclude_rope=4)
        k = attn.k_proj(memory)[:, None]
        q_rot, k_rot = attention_module.apply_rotary_enc(
            attn.q_proj(q)[:, None], k[:, :, :-4], attn._freqs_cis(64, q.device), repeat_freqs_k=True)
        out = F.scaled_dot_product_attention(q_rot, torch.cat([k_rot, k[:, :, -4:]], dim=2),
                                             attn.v_proj(memory)[:, None])
        expected = attn.out_proj(out[:, 0])
    assert torch.equal(got, expected)


@needs_onednn
def test_bfloat16_memory_cross_attention_over_raw_narrow_values_equals_projected_values():
    """softmax(qk) v_proj(x) == v_proj(softmax(qk) x): in bfloat16 the memory attention attends over the
    64-channel memories and projects afterwards."""
    attn, q, memory = _memory_cross_attention()
    with torch.inference_mode():
        expected = attn(q, memory, memory, num_k_exclude_rope=4)  # float32: values projected first
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert attn._values_late(memory)
            got = attn(q, memory, memory, num_k_exclude_rope=4)
    torch.testing.assert_close(got.float(), expected, rtol=5e-2, atol=5e-2)
