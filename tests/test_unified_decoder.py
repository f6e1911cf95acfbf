"""Unit tests for the SAM 2++ unified decoder and its corner-heatmap box head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sam2_plus.modeling.box_head import BoxHead, BoxHeadLowRes, FrozenBatchNorm2d
from sam2_plus.modeling.two_way_transformer import TwoWayTransformer
from sam2_plus.modeling.unified_decoder import UnifiedDecoder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MANIFEST = SHARED / "golden" / "manifests" / "sam2plus_hiera_b+.json"
PREFIX = "sam_unified_decoder."


def make_decoder(dim=256, image_size=1024, heads=8, mlp_dim=2048, use_high_res=True,
                 pred_masks=True, dynamic=True):
    """SAM 2++ settings (sam2.1_hiera_b+_predmasks_decoupled_MAME) with adjustable sizes."""
    return UnifiedDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=dim,
        use_high_res_features=use_high_res,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        sam_image_embedding_size=image_size // 16,
        image_size=image_size,
        unified_decoder_box_head_freeze_bn=True,
        unified_decoder_box_head_inner_dim=dim,
        unified_decoder_box_head_pred_masks=pred_masks,
        dynamic_multimask_via_stability=dynamic,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    ).eval()


def small_decoder(**kw):
    # transformer dim 64, 64x64 input: 4x4 embedding, 16x16 masks and heatmaps
    return make_decoder(dim=64, image_size=64, heads=2, mlp_dim=128, **kw)


def small_inputs(B=1, dim=64, side=4, P=2, seed=0, high_res=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    out = dict(
        image_embeddings=r(B, dim, side, side),
        image_pe=r(1, dim, side, side),
        sparse_prompt_embeddings=r(B, P, dim),
        dense_prompt_embeddings=r(B, dim, side, side),
        high_res_features=[r(B, dim // 8, 4 * side, 4 * side), r(B, dim // 4, 2 * side, 2 * side)]
        if high_res else None,
    )
    return out


# ---------------------------------------------------------------------------------------------
def test_state_dict_matches_checkpoint_manifest():
    if not MANIFEST.is_file():
        pytest.skip(f"shared golden folder not available ({MANIFEST})")
    keys = json.loads(MANIFEST.read_text())["keys"]
    expected = {k[len(PREFIX):]: list(v) for k, v in keys.items() if k.startswith(PREFIX)}
    assert expected, "manifest has no unified-decoder keys"
    got = {k: list(v.shape) for k, v in make_decoder().state_dict().items()}
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    bad = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert bad == {}


def test_no_coordinate_or_counter_entries_in_state_dict():
    sd = small_decoder().state_dict()
    assert not any(k.endswith(("coord_x", "coord_y", "indice", "num_batches_tracked")) for k in sd)
    assert "box_head.conv1_tl.1.running_var" in sd
    assert "box_head.adjust_4_to_4_br.1.running_mean" in sd
    assert not any(k.startswith("box_head.conv5") for k in sd)


@pytest.mark.parametrize("task", ["mask", "box", "point"])
@pytest.mark.parametrize("multimask", [True, False])
def test_output_shapes_per_task(task, multimask):
    dec = small_decoder()
    with torch.no_grad():
        masks, boxes, iou, tokens, obj = dec(**small_inputs(B=2), multimask_output=multimask,
                                             repeat_image=False, task=task)
    m = 3 if multimask else 1
    assert masks.shape == (2, m, 16, 16)
    assert iou.shape == (2, m)
    assert tokens.shape == (2, m, 64)  # multimask tokens feed the object pointer
    assert obj.shape == (2, 1)
    if task == "box":
        assert boxes.shape == (2, m, 4)
        assert torch.all((boxes >= 0) & (boxes < 1))  # soft-argmax of cell corners / 64
    else:
        assert boxes is None
    assert torch.all((iou >= 0) & (iou <= 1))  # sigmoid IoU head


def test_tasks_use_their_own_heads():
    dec = small_decoder()
    inp = small_inputs()
    tasks = ("mask", "box", "point")

    def run():
        with torch.no_grad():
            return {t: dec(**inp, multimask_output=True, repeat_image=False, task=t) for t in tasks}

    base = run()
    # the shared transformer and IoU / object-score heads give the same scores for every task
    for t in ("box", "point"):
        torch.testing.assert_close(base[t][2], base["mask"][2], rtol=0, atol=0)
        torch.testing.assert_close(base[t][4], base["mask"][4], rtol=0, atol=0)
        assert not torch.allclose(base[t][0], base["mask"][0])

    def perturbed(module_name):
        # perturb one module, run all tasks, restore
        mod = dict(dec.named_modules())[module_name]
        saved = {k: v.clone() for k, v in mod.state_dict().items()}
        with torch.no_grad():
            for v in mod.state_dict().values():
                if v.is_floating_point():
                    v.add_(0.5)
        try:
            return run()
        finally:
            mod.load_state_dict(saved)

    def changed(new, t, i):
        return not torch.equal(new[t][i], base[t][i])

    for task in tasks:
        for part in (f"output_upscaling_{task}", f"output_hypernetworks_mlps_{task}"):
            new = perturbed(part)
            assert changed(new, task, 0), part  # this task's masks move ...
            for other in tasks:
                if other != task:
                    assert not changed(new, other, 0), (part, other)  # ... no other task's
            if task == "box" and part.startswith("output_upscaling"):
                assert not changed(new, "box", 1)  # boxes do not use the upscaled embedding
    new = perturbed("box_head")
    assert changed(new, "box", 1) and not changed(new, "box", 0)
    assert all(not changed(new, t, 0) for t in ("mask", "point"))


def test_unknown_task_rejected():
    with pytest.raises(ValueError):
        small_decoder()(**small_inputs(), multimask_output=False, repeat_image=False, task="keypoint")


def test_repeat_image_equals_explicit_batch():
    dec = small_decoder()
    inp = small_inputs(B=2)
    rep = dict(inp, image_embeddings=inp["image_embeddings"][:1])
    tiled = dict(inp, image_embeddings=inp["image_embeddings"][:1].expand(2, -1, -1, -1))
    with torch.no_grad():
        a = dec(**rep, multimask_output=True, repeat_image=True, task="box")
        b = dec(**tiled, multimask_output=True, repeat_image=False, task="box")
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_low_res_variant_shapes():
    dec = small_decoder(use_high_res=False)
    assert isinstance(dec.box_head, BoxHeadLowRes)
    assert not any(k.startswith("conv_s0") for k in dec.state_dict())
    with torch.no_grad():
        masks, boxes, *_ = dec(**small_inputs(high_res=False), multimask_output=True,
                               repeat_image=False, task="box")
    assert masks.shape == (1, 3, 16, 16) and boxes.shape == (1, 3, 4)


# -- box head ------------------------------------------------------------------------------------
def test_soft_argmax_single_peak_gives_that_cell():
    head = BoxHead(inplanes=64, channel=64, feat_sz=16, stride=4, freeze_bn=True)
    score = torch.full((3, 1, 16, 16), -1e4)
    peaks = [(5, 11), (0, 0), (15, 2)]  # (row, col)
    for i, (r, c) in enumerate(peaks):
        score[i, 0, r, c] = 50.0
    x, y = head.soft_argmax(score)
    torch.testing.assert_close(x, torch.tensor([11.0, 0.0, 2.0]) * 4)
    torch.testing.assert_close(y, torch.tensor([5.0, 0.0, 15.0]) * 4)
    # uniform map -> grid centre of mass
    x, y = head.soft_argmax(torch.zeros(1, 1, 16, 16))
    torch.testing.assert_close(x, torch.tensor([7.5 * 4]))
    torch.testing.assert_close(y, torch.tensor([7.5 * 4]))


def test_box_head_forward_orders_corners_and_normalises(monkeypatch):
    head = BoxHead(inplanes=64, channel=64, feat_sz=16, stride=4, freeze_bn=True)
    B, N = 2, 3
    tl = torch.full((B, N, 16, 16), -1e4)
    br = torch.full((B, N, 16, 16), -1e4)
    expected = torch.zeros(B, N, 4)
    for b in range(B):
        for n in range(N):
            r0, c0, r1, c1 = b + n, 2 * n + 1, 8 + b, 9 + n
            tl[b, n, r0, c0] = 30.0
            br[b, n, r1, c1] = 30.0
            expected[b, n] = torch.tensor([c0, r0, c1, r1]) * 4 / 64.0
    monkeypatch.setattr(head, "get_score_map", lambda x, hyper_in: (tl, br))
    hyper = torch.zeros(B, N, 8)
    boxes = head(None, hyper)
    torch.testing.assert_close(boxes, expected)
    boxes2, d_tl, d_br = head(None, hyper, return_dist=True)
    torch.testing.assert_close(boxes2, expected)
    assert d_tl.shape == (B, N, 256)
    torch.testing.assert_close(d_tl.sum(-1), torch.ones(B, N))
    _, raw_tl, _ = head(None, hyper, return_dist=True, softmax=False)
    torch.testing.assert_close(raw_tl, tl.reshape(B, N, 256))


def test_box_head_real_forward_shapes():
    head = BoxHead(inplanes=64, channel=64, feat_sz=32, stride=4, freeze_bn=True).eval()
    g = torch.Generator().manual_seed(0)
    x_list = [torch.randn(2, 8, 32, 32, generator=g), torch.randn(2, 16, 16, 16, generator=g),
              torch.randn(2, 64, 8, 8, generator=g)]
    hyper = torch.randn(2, 4, 8, generator=g)
    with torch.no_grad():
        tl, br = head.get_score_map(x_list, hyper)
        boxes = head(x_list, hyper)
    assert tl.shape == br.shape == (2, 4, 32, 32)
    assert boxes.shape == (2, 4, 4)
    with pytest.raises(ValueError):
        head([x_list[1], x_list[1], x_list[2]], hyper)  # stride-4 map of the wrong size


def test_frozen_bn_is_affine_with_running_stats():
    g = torch.Generator().manual_seed(0)
    bn = FrozenBatchNorm2d(5)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    assert list(bn.parameters()) == []
    w, b = torch.randn(5, generator=g), torch.randn(5, generator=g)
    mean, var = torch.randn(5, generator=g), torch.rand(5, generator=g) + 0.5
    # a checkpoint written from nn.BatchNorm2d also carries num_batches_tracked: accepted
    bn.load_state_dict({"weight": w, "bias": b, "running_mean": mean, "running_var": var,
                        "num_batches_tracked": torch.tensor(7)}, strict=True)
    x = torch.randn(2, 5, 3, 4, generator=g)
    want = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5) * w[:, None, None] \
        + b[:, None, None]
    torch.testing.assert_close(bn(x), want)
    # batch statistics never enter, in train mode either
    bn.train()
    torch.testing.assert_close(bn(x), want)
    torch.testing.assert_close(bn(x[:1]), want[:1])
    ref = nn.BatchNorm2d(5, eps=1e-5).eval()
    ref.load_state_dict({"weight": w, "bias": b, "running_mean": mean, "running_var": var,
                         "num_batches_tracked": torch.tensor(0)})
    torch.testing.assert_close(bn(x), ref(x))


def test_coordinate_grids_follow_to():
    head = BoxHead(inplanes=64, channel=64, feat_sz=8, stride=4, freeze_bn=True)
    assert head.coord_x.dtype == torch.float32
    head = head.to(torch.float64)
    assert head.coord_x.dtype == torch.float64 and head.coord_y.dtype == torch.float64
    x, _ = head.soft_argmax(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    assert x.dtype == torch.float64
    head = head.to("meta")  # a device move without needing a GPU
    assert head.coord_x.device.type == "meta" and head.coord_y.device.type == "meta"
    if torch.cuda.is_available():
        head = BoxHead(inplanes=64, channel=64, feat_sz=8, stride=4, freeze_bn=True).cuda()
        assert head.coord_x.is_cuda
    # the whole decoder moves its box-head grids too
    dec = small_decoder().to(torch.float64)
    assert dec.box_head.coord_x.dtype == torch.float64
    with torch.no_grad():
        inp = {k: ([t.double() for t in v] if isinstance(v, list) else v.double())
               for k, v in small_inputs().items()}
        boxes = dec(**inp, multimask_output=True, repeat_image=False, task="box")[1]
    assert boxes.dtype == torch.float64


# -- multimask selection / rasterised boxes --------------------------------------------------------
def test_dynamic_fallback_selects_best_multimask_output():
    dec = small_decoder()
    B, S = 2, 32
    masks = torch.randn(B, 4, S, S)
    masks[0, 0] = 20.0  # stable single mask
    masks[1, 0] = torch.linspace(-1, 1, S * S).view(S, S)  # unstable single mask
    boxes = torch.rand(B, 4, 4)
    iou = torch.tensor([[0.1, 0.9, 0.2, 0.3], [0.1, 0.2, 0.3, 0.8]])
    m, bx, s = dec._dynamic_multimask_via_stability(masks, boxes, iou)
    assert m.shape == (B, 1, S, S) and bx.shape == (B, 1, 4) and s.shape == (B, 1)
    torch.testing.assert_close(m[0, 0], masks[0, 0])
    torch.testing.assert_close(bx[0, 0], boxes[0, 0])
    torch.testing.assert_close(s[0, 0], iou[0, 0])
    torch.testing.assert_close(m[1, 0], masks[1, 3])
    torch.testing.assert_close(bx[1, 0], boxes[1, 3])
    torch.testing.assert_close(s[1, 0], iou[1, 3])
    m, bx, s = dec._dynamic_multimask_via_stability(masks, None, iou)
    assert bx is None


def test_single_output_without_dynamic_takes_token_zero():
    dec = small_decoder(dynamic=False)
    inp = small_inputs()
    with torch.no_grad():
        full = dec.predict_masks(**{k: v for k, v in inp.items()}, repeat_image=False, task="box")
        single = dec(**inp, multimask_output=False, repeat_image=False, task="box")
    torch.testing.assert_close(single[0], full[0][:, :1])
    torch.testing.assert_close(single[1], full[1][:, :1])
    torch.testing.assert_close(single[3], full[3][:, :1])


def test_box_rasterised_masks_when_not_predicting_masks():
    dec = small_decoder(pred_masks=False)  # 16x16 mask grid
    boxes = torch.tensor([[[0.25, 0.5, 0.5, 0.75], [-0.2, 0.9, 2.0, 1.5], [0.6, 0.1, 0.5, 0.3]]])
    logits = dec._boxes_to_mask_logits(boxes)
    assert logits.shape == (1, 3, 16, 16)
    want = torch.full((3, 16, 16), -10.0)
    want[0, 8:12, 4:8] = 10.0
    want[1, 14:16, 0:16] = 10.0  # clipped to the grid
    # third box is inverted (x1 < x0): empty
    torch.testing.assert_close(logits[0], want)
    with torch.no_grad():
        masks, bx, *_ = dec(**small_inputs(), multimask_output=True, repeat_image=False, task="box")
    assert set(masks.unique().tolist()) <= {-10.0, 10.0}
    torch.testing.assert_close(masks, dec._boxes_to_mask_logits(bx))


def test_forward_applies_dynamic_selection_in_eval_only():
    dec = small_decoder(dynamic=True)
    inp = small_inputs(B=2, seed=3)
    with torch.no_grad():
        masks, boxes, iou, _, _ = dec.predict_masks(**inp, repeat_image=False, task="box")
        want = dec._dynamic_multimask_via_stability(masks, boxes, iou)
        got = dec(**inp, multimask_output=False, repeat_image=False, task="box")
        for a, b in zip(got[:3], want):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        dec.train()  # training never falls back: token 0
        got = dec(**inp, multimask_output=False, repeat_image=False, task="box")
    torch.testing.assert_close(got[0], masks[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(got[1], boxes[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(got[2], iou[:, :1], rtol=0, atol=0)


def test_boxes_depend_on_both_high_res_levels():
    dec = small_decoder()
    inp = small_inputs(seed=4)
    with torch.no_grad():
        base = dec(**inp, multimask_output=True, repeat_image=False, task="box")[1]
        for level in (0, 1):
            hr = [t.clone() for t in inp["high_res_features"]]
            hr[level] = hr[level] + 1.0
            moved = dec(**dict(inp, high_res_features=hr), multimask_output=True,
                        repeat_image=False, task="box")[1]
            assert not torch.equal(moved, base), level
