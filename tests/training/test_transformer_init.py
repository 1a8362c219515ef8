"""ImageNet initialization of the transformer backbones from small synthetic files in the formats of the
original releases (Swin ``{"model": ...}`` with classifier keys and attention-mask buffers, PVTv2 and P2T bare
state dicts, a ``backbone.``-prefixed file): both backbones get the weights, and the report says what was
loaded, renamed, left at init and unused."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import copy  # noqa: E402

import calibnet  # noqa: E402
from calibnet.modeling.p2t import PyramidPoolingTransformer  # noqa: E402
from calibnet.modeling.pvt_v2 import PyramidVisionTransformerV2  # noqa: E402
from calibnet.modeling.swin import SwinTransformer  # noqa: E402
from calibnet.training.backbone_init import init_backbones  # noqa: E402
from calibnet.training.transformer_init import TransformerInitError, init_transformer_backbones  # noqa: E402

SMALL = {  # reduced widths/depths, the layouts of the real variants
    "swint": lambda: SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)),
    "pvt": lambda: PyramidVisionTransformerV2(embed_dims=(16, 32, 40, 512), depths=(1, 1, 2, 1), linear=True),
    "p2t": lambda: PyramidPoolingTransformer(embed_dims=(16, 32, 40, 64), depths=(1, 1, 2, 1), num_classes=10),
}


class _TwoBackbones(torch.nn.Module):
    """What the initializer touches of a CalibNet: ``cfg``, ``backbone``, ``backbonedepth``, an encoder."""

    def __init__(self, variant):
        super().__init__()
        self.cfg = calibnet.get_config(variant)
        torch.manual_seed(0)
        self.backbone = SMALL[variant]()
        self.backbonedepth = copy.deepcopy(self.backbone)
        self.encoder = torch.nn.Linear(4, 4)


def _small_model(variant):
    return _TwoBackbones(variant), variant


def _release_file(variant, _cfg, tmp_path):
    """An 'ImageNet' state dict in the release's layout (its own random weights)."""
    torch.manual_seed(1)
    sd = SMALL[variant]().state_dict()
    if variant == "swint":  # classification Swin: one final norm + head, attention masks, no norm0..3
        for i in range(4):
            sd.pop(f"norm{i}.weight"), sd.pop(f"norm{i}.bias")
        sd["norm.weight"], sd["norm.bias"] = torch.ones(128), torch.zeros(128)
        sd["head.weight"], sd["head.bias"] = torch.randn(21841, 128), torch.zeros(21841)
        sd["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
        obj = {"model": sd}
        name = "swin_tiny_patch4_window7_224_22k.pth"
    elif variant == "pvt":
        sd["head.weight"], sd["head.bias"] = torch.randn(1000, 512), torch.zeros(1000)
        obj, name = sd, "pvt_v2_b2_li.pth"
    else:
        sd["norm.weight"], sd["norm.bias"] = torch.ones(64), torch.zeros(64)
        obj, name = sd, "p2t_large.pth"
    path = tmp_path / name
    torch.save(obj, path)
    return path, sd


@pytest.mark.parametrize("variant", list(SMALL))
def test_release_file_initializes_both_backbones_with_a_report(variant, tmp_path, capsys):
    model, cfg = _small_model(variant)
    path, sd = _release_file(variant, cfg, tmp_path)
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    counts = init_backbones(model, path)  # the training CLI's entry point dispatches on the backbone
    report = capsys.readouterr().err
    for attr in ("backbone", "backbonedepth"):
        own = getattr(model, attr).state_dict()
        for k, v in own.items():
            if k in sd:
                assert torch.equal(v, sd[k]), (attr, k)
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    n_own = len(model.backbone.state_dict())
    if variant == "swint":
        assert counts["backbone"] == n_own - 8 and counts["left_at_init"] == 8
        assert "left at init (8): norm0.weight" in report and "head.weight" in report and "attn_mask" in report
        assert torch.equal(model.backbone.norm3.weight, torch.ones(128))
    else:
        assert counts["backbone"] == counts["backbonedepth"] == n_own and counts["left_at_init"] == 0
        assert counts["unused"] == 2 and ("head.weight" if variant == "pvt" else "norm.weight") in report
    assert f"from {path}" in report


def test_prefixed_file_is_renamed_and_wrong_shapes_are_named(tmp_path):
    model, cfg = _small_model("pvt")
    _, sd = _release_file("pvt", cfg, tmp_path)
    prefixed = tmp_path / "pvt_d2.pth"
    torch.save({"model": {f"backbone.{k}": v for k, v in sd.items()}}, prefixed)
    report = init_transformer_backbones(model, prefixed, quiet=True)
    assert len(report.renamed) == len(report.loaded) == len(model.backbone.state_dict())
    assert report.renamed["backbone.block1.0.attn.q.weight"] == "block1.0.attn.q.weight"
    assert torch.equal(model.backbonedepth.block1[0].attn.q.weight, sd["block1.0.attn.q.weight"])
    bad = dict(sd)
    bad["patch_embed1.proj.weight"] = torch.zeros(32, 3, 7, 7)  # another width
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(TransformerInitError, match=r"patch_embed1.proj.weight \(file \[32, 3, 7, 7\]"):
        init_transformer_backbones(model, tmp_path / "bad.pth", quiet=True)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    with pytest.raises(TransformerInitError, match="no tensor matches"):
        init_transformer_backbones(model, tmp_path / "resnet.pth", quiet=True)


@pytest.mark.parametrize("variant", ["swint", "pvt", "p2t"])
def test_official_recipes_have_the_official_schedule(variant, tmp_path):
    from calibnet.cli.train import build_parser, train_request
    from calibnet.training.plan import TrainError, resolve_plan

    parser = build_parser()
    plan = resolve_plan(train_request(parser.parse_args(["--recipe", f"come15k-{variant}", "--dataset",
                                                         "come15k_train", "--data-root", str(tmp_path)])))
    official = calibnet.get_config(variant)
    assert plan.cfg.backbone.name == official.backbone.name
    s = plan.cfg.solver
    assert (s.max_iter, s.ims_per_batch, s.base_lr, s.steps) == (100000, 4, 2.5e-5, (70000, 90000))
    assert (s.weight_decay, s.optimizer) == (official.solver.weight_decay, "ADAMW") and plan.warmup_iters == 1000
    assert plan.synthetic is None and plan.eval_scenes == 0
    with pytest.raises(TrainError, match="no training data"):  # the recipe brings no data of its own
        resolve_plan(train_request(parser.parse_args(["--recipe", f"come15k-{variant}"])))
