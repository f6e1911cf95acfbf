"""Unit tests of the model components (small inputs, CPU, no checkpoints)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sam2_plus.modeling.attention import Attention, RoPEAttention
from sam2_plus.modeling.common import MLP, LayerNorm2d
from sam2_plus.modeling.hiera import Hiera, MultiScaleBlock, window_partition, window_unpartition
from sam2_plus.modeling.image_encoder import FpnNeck, ImageEncoder
from sam2_plus.modeling.mask_decoder import MaskDecoder
from sam2_plus.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2_plus.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2_plus.modeling.position_encoding import (
    PositionEmbeddingRandom,
    PositionEmbeddingSine,
    apply_rotary_enc,
    compute_axial_cis,
)
from sam2_plus.modeling.prompt_encoder import PromptEncoder
from sam2_plus.modeling.two_way_transformer import TwoWayTransformer

MANIFESTS = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "manifests"

# Trunk settings of the SAM 2.1 configs; everything else is shared by all sizes.
TRUNKS = {
    "t": dict(embed_dim=96, num_heads=1, stages=[1, 2, 7, 2], global_att_blocks=[5, 7, 9],
              window_pos_embed_bkg_spatial_size=[7, 7]),
    "s": dict(embed_dim=96, num_heads=1, stages=[1, 2, 11, 2], global_att_blocks=[7, 10, 13],
              window_pos_embed_bkg_spatial_size=[7, 7]),
    "b+": dict(embed_dim=112, num_heads=2),
    "l": dict(embed_dim=144, num_heads=2, stages=[2, 6, 36, 4], global_att_blocks=[23, 33, 43],
              window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 16, 8]),
}


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _memory_attention(d_model=256, kv_dim=64, heads=1, feat=64, layers=4, ffn=2048) -> MemoryAttention:
    def rope(**extra):
        return RoPEAttention(rope_theta=10000.0, feat_sizes=[feat, feat], embedding_dim=d_model, num_heads=heads,
                             downsample_rate=1, dropout=0.1, **extra)

    layer = MemoryAttentionLayer(
        activation="relu", dim_feedforward=ffn, dropout=0.1, pos_enc_at_attn=False, d_model=d_model,
        pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        self_attention=rope(), cross_attention=rope(rope_k_repeat=True, kv_in_dim=kv_dim),
    )
    return MemoryAttention(d_model=d_model, pos_enc_at_input=True, layer=layer, num_layers=layers)


def _memory_encoder() -> MemoryEncoder:
    return MemoryEncoder(
        out_dim=64,
        position_encoding=PositionEmbeddingSine(num_pos_feats=64, normalize=True, scale=None, temperature=10000),
        mask_downsampler=MaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=Fuser(layer=CXBlock(dim=256, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
                    num_layers=2),
    )


def _mask_decoder(dim=256, heads=8, mlp=2048, **extra) -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=mlp, num_heads=heads),
        transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=dim, **extra,
    )


def _components(size: str) -> Dict[str, nn.Module]:
    trunk = Hiera(**TRUNKS[size])
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=256, normalize=True, scale=None, temperature=10000),
        d_model=256, backbone_channel_list=trunk.channel_list, fpn_top_down_levels=[2, 3], fpn_interp_model="nearest",
    )
    return {
        "image_encoder": ImageEncoder(trunk=trunk, neck=neck, scalp=1),
        "sam_prompt_encoder": PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                            input_image_size=(1024, 1024), mask_in_chans=16),
        "sam_mask_decoder": _mask_decoder(use_high_res_features=True, iou_prediction_use_sigmoid=True,
                                          pred_obj_scores=True, pred_obj_scores_mlp=True,
                                          use_multimask_token_for_obj_ptr=True),
        "memory_attention": _memory_attention(),
        "memory_encoder": _memory_encoder(),
    }


def _load_manifest(name: str) -> Dict[str, list]:
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text())["keys"]


def _shapes(module: nn.Module, prefix: str) -> Dict[str, list]:
    return {f"{prefix}.{k}": list(v.shape) for k, v in module.state_dict().items()}


def _subset(manifest: Dict[str, list], prefix: str) -> Dict[str, list]:
    return {k: list(v) for k, v in manifest.items() if k.startswith(prefix + ".")}


# --- state-dict layout against the official checkpoints --------------------------------


@pytest.mark.parametrize("size", ["t", "s", "b+", "l"])
def test_state_dict_matches_sam21_manifest(size):
    manifest = _load_manifest(f"sam2.1_hiera_{size}")
    with torch.device("meta"):
        components = _components(size)
    for prefix, module in components.items():
        expected = _subset(manifest, prefix)
        assert expected, prefix
        assert _shapes(module, prefix) == expected, prefix


def test_shared_components_match_sam2plus_manifest():
    manifest = _load_manifest("sam2plus_hiera_b+")
    with torch.device("meta"):
        components = _components("b+")
    assert _shapes(components["image_encoder"], "image_encoder") == _subset(manifest, "image_encoder")
    assert _shapes(components["sam_prompt_encoder"], "sam_prompt_encoder") == _subset(manifest, "sam_prompt_encoder")
    for task in ("mask", "point", "box"):
        assert _shapes(components["memory_attention"], f"memory_attention_{task}") == _subset(
            manifest, f"memory_attention_{task}")
        assert _shapes(components["memory_encoder"], f"memory_encoder_{task}") == _subset(
            manifest, f"memory_encoder_{task}")


# --- common ----------------------------------------------------------------------------


def test_mlp_layout_and_sigmoid():
    mlp = MLP(8, 16, 3, num_layers=3, sigmoid_output=True)
    assert [k for k in mlp.state_dict()] == [f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    out = mlp(torch.randn(5, 8, generator=_seed()) * 100)
    assert out.shape == (5, 3)
    assert bool(((out >= 0) & (out <= 1)).all())


def test_layernorm2d_normalises_each_pixel_over_channels():
    x = torch.randn(2, 6, 5, 4, generator=_seed()) * 3 + 7
    out = LayerNorm2d(6)(x)
    assert torch.allclose(out.mean(dim=1), torch.zeros(2, 5, 4), atol=1e-5)
    assert torch.allclose(out.var(dim=1, unbiased=False), torch.ones(2, 5, 4), atol=1e-3)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected, atol=1e-5)


# --- position encodings ----------------------------------------------------------------


def test_sine_encoding_values_at_known_positions():
    h, w, feats = 6, 4, 16
    pe = PositionEmbeddingSine(num_pos_feats=feats)(torch.zeros(3, 1, h, w))
    assert pe.shape == (3, feats, h, w)
    assert torch.equal(pe[0], pe[2])
    half = feats // 2
    for row, col in [(0, 0), (5, 3), (2, 1)]:
        y = (row + 1) / (h + 1e-6) * 2 * math.pi
        x = (col + 1) / (w + 1e-6) * 2 * math.pi
        for c in range(half):
            freq = 10000 ** (2 * (c // 2) / half)
            fn = math.sin if c % 2 == 0 else math.cos
            assert pe[0, c, row, col].item() == pytest.approx(fn(y / freq), abs=1e-5)
            assert pe[0, half + c, row, col].item() == pytest.approx(fn(x / freq), abs=1e-5)
    # the last row/column sits at (almost exactly) 2*pi: sin ~ 0, cos ~ 1 on the first pair
    assert pe[0, 0, h - 1, 0].item() == pytest.approx(0.0, abs=1e-4)
    assert pe[0, half + 1, 0, w - 1].item() == pytest.approx(1.0, abs=1e-6)


def test_random_encoding_grid_matches_pixel_centre_coords():
    layer = PositionEmbeddingRandom(8)
    grid = layer((4, 6))  # (C, H, W)
    assert grid.shape == (16, 4, 6)
    assert torch.allclose(grid[:8] ** 2 + grid[8:] ** 2, torch.ones(8, 4, 6), atol=1e-5)
    # pixel centre (col + .5, row + .5) of a 4x6 grid, in a 40x60 image
    coords = torch.tensor([[[(2 + 0.5) * 10, (1 + 0.5) * 10], [(5 + 0.5) * 10, (3 + 0.5) * 10]]])
    enc = layer.forward_with_coords(coords, (40, 60))
    assert torch.allclose(enc[0, 0], grid[:, 1, 2], atol=1e-5)
    assert torch.allclose(enc[0, 1], grid[:, 3, 5], atol=1e-5)


def test_rope_preserves_norms_and_identity_at_origin():
    cis = compute_axial_cis(dim=16, end_x=4, end_y=4)
    assert cis.shape == (16, 8)
    q, k = torch.randn(2, 3, 16, 16, generator=_seed()), torch.randn(2, 3, 16, 16, generator=_seed(1))
    q_rot, k_rot = apply_rotary_enc(q, k, cis)
    pair_norm = lambda t: t.reshape(*t.shape[:-1], -1, 2).norm(dim=-1)  # noqa: E731
    assert torch.allclose(pair_norm(q_rot), pair_norm(q), atol=1e-5)
    assert torch.allclose(pair_norm(k_rot), pair_norm(k), atol=1e-5)
    assert torch.allclose(q_rot[:, :, 0], q[:, :, 0], atol=1e-6)  # token (0, 0) is not rotated
    assert not torch.allclose(q_rot[:, :, 5], q[:, :, 5], atol=1e-3)


def test_rope_scores_depend_only_on_relative_offset():
    cis = compute_axial_cis(dim=8, end_x=4, end_y=4)
    vq, vk = torch.randn(8, generator=_seed()), torch.randn(8, generator=_seed(1))
    q = vq.expand(1, 1, 16, 8).clone()
    k = vk.expand(1, 1, 16, 8).clone()
    q_rot, k_rot = apply_rotary_enc(q, k, cis)
    scores = (q_rot[0, 0] @ k_rot[0, 0].T)  # token index = y * 4 + x
    # same offset (dx=1, dy=2): q(1,0)->k(2,2) and q(2,1)->k(3,3)
    assert scores[0 * 4 + 1, 2 * 4 + 2].item() == pytest.approx(scores[1 * 4 + 2, 3 * 4 + 3].item(), abs=1e-4)
    assert scores[0, 5].item() != pytest.approx(scores[0, 6].item(), abs=1e-3)


def test_rope_k_repeat_tiles_rotations_over_frames():
    cis = compute_axial_cis(dim=8, end_x=2, end_y=2)
    q, k = torch.randn(1, 2, 4, 8, generator=_seed()), torch.randn(1, 2, 4, 8, generator=_seed(1))
    _, k_once = apply_rotary_enc(q, k, cis)
    _, k_twice = apply_rotary_enc(q, torch.cat([k, k], dim=2), cis, repeat_freqs_k=True)
    assert torch.allclose(k_twice, torch.cat([k_once, k_once], dim=2))


# --- attention -------------------------------------------------------------------------


def test_attention_downsample_and_kv_dim():
    attn = Attention(32, 4, downsample_rate=2, kv_in_dim=12)
    assert attn.q_proj.weight.shape == (16, 32) and attn.k_proj.weight.shape == (16, 12)
    out = attn(torch.randn(2, 5, 32), torch.randn(2, 7, 12), torch.randn(2, 7, 12))
    assert out.shape == (2, 5, 32)


def test_rope_attention_excluded_keys_are_position_free():
    torch.manual_seed(0)
    attn = RoPEAttention(16, 2, kv_in_dim=8, rope_k_repeat=True, feat_sizes=(2, 2)).eval()
    q = torch.randn(1, 4, 16)
    mem = torch.randn(1, 2 * 4 + 3, 8) * 3  # two 2x2 frames + 3 pointer tokens
    base = attn(q, mem, mem, num_k_exclude_rope=3)
    ptr_swapped = torch.cat([mem[:, :8], mem[:, [10, 8, 9]]], dim=1)
    assert torch.allclose(attn(q, ptr_swapped, ptr_swapped, num_k_exclude_rope=3), base, atol=1e-5)
    grid_swapped = torch.cat([mem[:, [1, 0, 2, 3]], mem[:, 4:]], dim=1)
    assert not torch.allclose(attn(q, grid_swapped, grid_swapped, num_k_exclude_rope=3), base, atol=1e-4)


def test_rope_attention_rejects_unequal_lengths_without_k_repeat():
    attn = RoPEAttention(16, 1, feat_sizes=(2, 2))
    with pytest.raises(ValueError):
        attn(torch.randn(1, 4, 16), torch.randn(1, 8, 16), torch.randn(1, 8, 16))


def test_two_way_transformer_shapes():
    tr = TwoWayTransformer(depth=2, embedding_dim=32, num_heads=4, mlp_dim=64)
    img, pe, tokens = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8), torch.randn(2, 5, 32)
    queries, keys = tr(img, pe, tokens)
    assert queries.shape == (2, 5, 32) and keys.shape == (2, 64, 32)
    assert tr.layers[0].skip_first_layer_pe and not tr.layers[1].skip_first_layer_pe


# --- prompt encoder --------------------------------------------------------------------


def _small_prompt_encoder() -> PromptEncoder:
    return PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=16)


def test_prompt_encoder_pads_points_without_box():
    enc = _small_prompt_encoder()
    coords = torch.tensor([[[10.0, 20.0], [64.0, 64.0]]])
    labels = torch.tensor([[1, -1]], dtype=torch.int32)
    sparse, dense = enc((coords, labels), None, None)
    assert sparse.shape == (1, 3, 32)
    pad = enc.not_a_point_embed.weight[0]
    assert torch.equal(sparse[0, 1], pad) and torch.equal(sparse[0, 2], pad)
    expected = enc.pe_layer.forward_with_coords(coords[:, :1] + 0.5, (128, 128))[0, 0] + enc.point_embeddings[1].weight[0]
    assert torch.allclose(sparse[0, 0], expected)
    assert dense.shape == (1, 32, 8, 8)
    assert torch.equal(dense[0, :, 3, 5], enc.no_mask_embed.weight[0])


def test_prompt_encoder_box_and_mask():
    enc = _small_prompt_encoder()
    coords = torch.tensor([[[10.0, 20.0]]])
    labels = torch.tensor([[0]])
    boxes = torch.tensor([[5.0, 6.0, 70.0, 90.0]])
    sparse, dense = enc((coords, labels), boxes, torch.randn(1, 1, 32, 32))
    assert sparse.shape == (1, 3, 32)  # point + 2 corners, no padding token
    corners = enc.pe_layer.forward_with_coords(torch.tensor([[[5.5, 6.5], [70.5, 90.5]]]), (128, 128))[0]
    assert torch.allclose(sparse[0, 1], corners[0] + enc.point_embeddings[2].weight[0])
    assert torch.allclose(sparse[0, 2], corners[1] + enc.point_embeddings[3].weight[0])
    assert dense.shape == (1, 32, 8, 8)
    assert enc.get_dense_pe().shape == (1, 32, 8, 8)


# --- mask decoder ----------------------------------------------------------------------


def test_mask_decoder_outputs():
    dec = _mask_decoder(dim=32, heads=2, mlp=64, use_high_res_features=True, iou_prediction_use_sigmoid=True,
                        pred_obj_scores=True, pred_obj_scores_mlp=True, use_multimask_token_for_obj_ptr=True).eval()
    emb, pe = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    sparse, dense = torch.randn(3, 2, 32), torch.randn(3, 32, 8, 8)
    high_res = [torch.randn(3, 4, 32, 32), torch.randn(3, 8, 16, 16)]
    masks, iou, tokens, obj = dec(emb, pe, sparse, dense, True, True, high_res)
    assert masks.shape == (3, 3, 32, 32) and iou.shape == (3, 3) and tokens.shape == (3, 3, 32) and obj.shape == (3, 1)
    assert bool(((iou >= 0) & (iou <= 1)).all())
    masks, iou, tokens, obj = dec(emb.expand(3, -1, -1, -1), pe, sparse, dense, False, False, high_res)
    assert masks.shape == (3, 1, 32, 32) and iou.shape == (3, 1) and tokens.shape == (3, 1, 32)


def test_mask_decoder_without_obj_score_head_reports_present():
    dec = _mask_decoder(dim=32, heads=2, mlp=64).eval()
    out = dec(torch.randn(2, 32, 4, 4), torch.randn(1, 32, 4, 4), torch.randn(2, 1, 32), torch.randn(2, 32, 4, 4),
              False, False)
    assert out[0].shape == (2, 1, 16, 16)
    assert torch.equal(out[3], torch.full((2, 1), 10.0))


def test_dynamic_multimask_falls_back_on_unstable_single_mask():
    dec = _mask_decoder(dim=32, heads=2, mlp=64, dynamic_multimask_via_stability=True).eval()
    logits = torch.zeros(2, 4, 4, 4)
    logits[0, 0] = 5.0  # confident: stable
    logits[1, 0, :2] = 0.01  # inside (-delta, +delta): unstable
    logits[:, 1:] = torch.arange(3.0).view(1, 3, 1, 1)
    ious = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.1, 0.2, 0.9, 0.3]])
    masks, scores = dec._dynamic_multimask_via_stability(logits, ious)
    assert torch.equal(masks[0, 0], logits[0, 0]) and scores[0, 0].item() == pytest.approx(0.1)
    assert torch.equal(masks[1, 0], logits[1, 2]) and scores[1, 0].item() == pytest.approx(0.9)


# --- Hiera and image encoder -----------------------------------------------------------


def test_window_partition_roundtrip_with_padding():
    x = torch.randn(2, 7, 10, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (8, 12) and windows.shape == (2 * 2 * 3, 4, 4, 3)
    assert torch.equal(window_unpartition(windows, 4, pad_hw, (7, 10)), x)


def test_windowed_attention_equals_global_attention_per_window():
    torch.manual_seed(0)
    windowed = MultiScaleBlock(dim=16, dim_out=16, num_heads=2, window_size=4).eval()
    global_ = MultiScaleBlock(dim=16, dim_out=16, num_heads=2, window_size=0).eval()
    global_.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 8, 8, 16)
    out = windowed(x)
    for r in (0, 4):
        for c in (0, 4):
            assert torch.allclose(out[:, r:r + 4, c:c + 4], global_(x[:, r:r + 4, c:c + 4]), atol=1e-5)
    # a window covering the whole map is global attention
    whole = MultiScaleBlock(dim=16, dim_out=16, num_heads=2, window_size=8).eval()
    whole.load_state_dict(windowed.state_dict())
    assert torch.allclose(whole(x), global_(x), atol=1e-5)


def test_q_pool_block_halves_resolution_and_changes_width():
    block = MultiScaleBlock(dim=8, dim_out=16, num_heads=2, q_stride=(2, 2), window_size=4).eval()
    assert block(torch.randn(2, 12, 12, 8)).shape == (2, 6, 6, 16)


def _tiny_hiera() -> Hiera:
    return Hiera(embed_dim=8, num_heads=1, stages=[1, 2, 2, 1], global_att_blocks=[4],
                 window_pos_embed_bkg_spatial_size=[4, 4], window_spec=[4, 4, 2, 2])


def test_hiera_multiscale_outputs():
    trunk = _tiny_hiera().eval()
    assert trunk.channel_list == [64, 32, 16, 8]
    feats = trunk(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4), (1, 64, 2, 2)]
    assert [b.window_size for b in trunk.blocks] == [4, 4, 4, 4, 0, 2]


def test_hiera_pos_embed_is_window_periodic_on_top_of_background():
    trunk = _tiny_hiera()
    with torch.no_grad():
        trunk.pos_embed.zero_()
        trunk.pos_embed_window.normal_()
    pos = trunk._get_pos_embed((8, 12))  # (1, H, W, C)
    assert pos.shape == (1, 8, 12, 8)
    assert torch.equal(pos[:, :4, :4], pos[:, 4:, 8:])


def test_fpn_neck_top_down_levels_and_scalp():
    trunk = _tiny_hiera().eval()
    neck = FpnNeck(PositionEmbeddingSine(16), d_model=16, backbone_channel_list=trunk.channel_list,
                   fpn_top_down_levels=[2, 3], fpn_interp_model="nearest")
    encoder = ImageEncoder(trunk, neck, scalp=1).eval()
    image = torch.randn(1, 3, 64, 64)
    out = encoder(image)
    feats = trunk(image)
    assert [tuple(f.shape) for f in out["backbone_fpn"]] == [(1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4)]
    assert [tuple(p.shape) for p in out["vision_pos_enc"]] == [(1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4)]
    assert out["vision_features"] is out["backbone_fpn"][-1]
    # levels 0 and 1 are lateral only, level 2 adds the upsampled level 3
    assert torch.allclose(out["backbone_fpn"][0], neck.convs[3](feats[0]), atol=1e-6)
    lateral2 = neck.convs[1](feats[2])
    top = neck.convs[0](feats[3])
    assert torch.allclose(out["backbone_fpn"][2], lateral2 + top.repeat_interleave(2, 2).repeat_interleave(2, 3),
                          atol=1e-5)
    with pytest.raises(ValueError):
        ImageEncoder(trunk, FpnNeck(PositionEmbeddingSine(16), 16, [8, 16, 32, 64]))


# --- memory ----------------------------------------------------------------------------


def test_memory_encoder_shapes_and_sigmoid_skip():
    enc = _memory_encoder().eval()
    pix, mask = torch.randn(1, 256, 4, 4), torch.randn(1, 1, 64, 64)
    out = enc(pix, mask)
    assert out["vision_features"].shape == (1, 64, 4, 4)
    assert len(out["vision_pos_enc"]) == 1 and out["vision_pos_enc"][0].shape == (1, 64, 4, 4)
    skipped = enc(pix, torch.sigmoid(mask), skip_mask_sigmoid=True)
    assert torch.allclose(skipped["vision_features"], out["vision_features"], atol=1e-5)


def test_mask_downsampler_layout():
    ds = MaskDownSampler(embed_dim=8, kernel_size=3, stride=2, padding=1, total_stride=16)
    convs = [m for m in ds.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 16, 64, 256, 8]
    assert ds(torch.randn(1, 1, 32, 32)).shape == (1, 8, 2, 2)


def test_cxblock_with_zero_layer_scale_is_identity():
    block = CXBlock(dim=8)
    with torch.no_grad():
        block.gamma.zero_()
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), x)


def test_memory_attention_shapes_and_batch_independence():
    torch.manual_seed(0)
    ma = _memory_attention(d_model=32, kv_dim=16, heads=2, feat=4, layers=2, ffn=64).eval()
    curr, curr_pos = torch.randn(16, 2, 32), torch.randn(16, 2, 32)
    mem, mem_pos = torch.randn(2 * 16 + 4, 2, 16), torch.randn(2 * 16 + 4, 2, 16)
    out = ma(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4)
    assert out.shape == (16, 2, 32)
    single = ma([curr[:, 1:]], mem[:, 1:], [curr_pos[:, 1:]], mem_pos[:, 1:], num_obj_ptr_tokens=4)
    assert torch.allclose(out[:, 1:], single, atol=1e-5)
