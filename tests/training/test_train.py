"""Training: real steps on synthetic batches, resume, schedule, checkpoints, backbone init, the CLI."""

from __future__ import annotations

import copy
import pickle

import pytest

torch = pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet import get_config  # noqa: E402
from calibnet.cli.train import main as train_main  # noqa: E402
from calibnet.config import CalibNetConfig, write_config_yaml  # noqa: E402
from calibnet.training.backbone_init import BackboneInitError, init_backbones, torchvision_to_d2  # noqa: E402
from calibnet.training.batches import SyntheticBatches  # noqa: E402
from calibnet.training.solver import SolverOptions, lr_factor  # noqa: E402
from calibnet.training.trainer import Trainer, TrainOptions  # noqa: E402

TINY = {"decoder.num_kernels": 10, "input.min_size_train": (64,), "input.max_size_train": 96,
        "input.min_size_test": 64, "input.max_size_test": 96}


def tiny_cfg():
    return get_config("r18").replace(**TINY)


def tiny_source(batch=2, seed=1_000_000):
    return SyntheticBatches(batch_size=batch, height=96, width=144, short=64, max_size=96, seed=seed)


class FixedBatch:
    def __init__(self, batch):
        self._batch = batch

    def batch(self, iteration):
        return self._batch


def make_trainer(source, out_dir=None, seed=0, lr=1e-4, **kw):
    model = calibnet.build_model(tiny_cfg(), seed=seed, eval_mode=False, quiet=True)
    opts = TrainOptions(max_iter=100, solver=SolverOptions(base_lr=lr, warmup_iters=kw.pop("warmup", 0)),
                        out_dir=out_dir, progress=False, tensorboard=False, **kw)
    return Trainer(model, source, opts)


def test_synthetic_batches_match_the_collate_format_and_are_deterministic():
    src = tiny_source()
    a, b = src.batch(3), src.batch(3)
    assert a["rgb"].shape == (2, 3, 64, 96) and a["rgb"].dtype == torch.float32
    assert a["depth"].shape == (2, 1, 64, 96) and a["image_sizes"].tolist() == [[64, 96], [64, 96]]
    assert all(m.dtype == torch.bool and m.shape[1:] == (64, 96) and m.shape[0] >= 1 for m in a["masks"])
    assert torch.equal(a["rgb"], b["rgb"]) and all(torch.equal(x, y) for x, y in zip(a["masks"], b["masks"]))
    assert not torch.equal(src.batch(4)["rgb"], a["rgb"])
    other_rank = SyntheticBatches(**{**src.__dict__, "rank": 1, "world_size": 2})
    assert set(other_rank.batch(3)["image_ids"]).isdisjoint(
        SyntheticBatches(**{**src.__dict__, "world_size": 2}).batch(3)["image_ids"])


@pytest.mark.slow
def test_real_steps_decrease_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    trainer = make_trainer(FixedBatch(tiny_source().batch(0)))
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    records = trainer.train(max_iter=6)
    losses = [r["total_loss"] for r in records]
    assert trainer.iteration == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.95, losses
    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("backbonedepth.") for k in changed)
    assert any(k.startswith("predictor_depth_d2.") for k in changed)  # the aux heads are trained


@pytest.mark.slow
def test_resume_continues_with_identical_state_and_next_step(tmp_path):
    src = tiny_source()
    a = make_trainer(src, tmp_path / "a", warmup=3)
    a.train(max_iter=2)
    snap_opt = copy.deepcopy(a.optimizer.state_dict())
    saved = tmp_path / "a" / "model_final.pth"
    resume_file = tmp_path / "at2.pth"
    resume_file.write_bytes(saved.read_bytes())
    rec_a = a.train(max_iter=3)[-1]

    b = make_trainer(src, tmp_path / "b", seed=123, warmup=3)  # another init: everything must come from the file
    assert b.resume(resume_file) == 2
    opt_b = b.optimizer.state_dict()
    assert opt_b["param_groups"] == snap_opt["param_groups"]
    assert opt_b["state"].keys() == snap_opt["state"].keys()
    for idx, st in snap_opt["state"].items():
        for k, v in st.items():
            assert torch.equal(opt_b["state"][idx][k], v), (idx, k)
    assert b.scheduler.last_epoch == 2
    rec_b = b.train(max_iter=3)[-1]
    assert rec_b["total_loss"] == rec_a["total_loss"]
    # the rate logged for step 3 is the one it used: warm-up factor at index 2
    assert rec_b["lr"] == rec_a["lr"] == pytest.approx(1e-4 * lr_factor(2, (100,), 0.1, 3, 1e-3))
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    # the file is a detectron2-style checkpoint the rest of calibnet reads
    model = calibnet.build_model(tiny_cfg(), weights=tmp_path / "b" / "model_final.pth", quiet=True)
    assert torch.equal(model.state_dict()["decoder.inst_branch.objectness.weight"],
                       b.model.state_dict()["decoder.inst_branch.objectness.weight"])
    assert (tmp_path / "b" / "last_checkpoint").read_text().strip() == "model_final.pth"
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,total_loss,loss_ce") and rows[-1].startswith("3,")


def test_warmup_and_step_schedule():
    assert lr_factor(0, (10, 20), 0.1, 5, 0.001) == pytest.approx(0.001)
    assert lr_factor(5, (10, 20), 0.1, 5, 0.001) == pytest.approx(1.0)
    assert lr_factor(10, (10, 20), 0.1, 5, 0.001) == pytest.approx(0.1)
    assert lr_factor(25, (10, 20), 0.1, 5, 0.001) == pytest.approx(0.01)


def test_optimizer_groups_follow_the_official_rules():
    from calibnet.training.solver import build_optimizer

    model = calibnet.build_model(tiny_cfg(), eval_mode=False, quiet=True)
    opt = build_optimizer(model, SolverOptions(base_lr=1e-3, weight_decay=0.05, backbone_multiplier=0.5))
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["backbone.stem.conv1.weight"]["lr"] == pytest.approx(5e-4)
    assert groups["decoder.inst_branch.fc.weight"]["lr"] == pytest.approx(1e-3)
    assert groups["encoder.trans_encoder.encoder.layers.0.norm1.weight"]["weight_decay"] == 0.0
    assert groups["decoder.inst_branch.fc.weight"]["weight_decay"] == 0.05
    assert isinstance(opt, torch.optim.AdamW)


def _torchvision_name(d2: str) -> str:
    """Inverse of detectron2's converter, written out independently for the test."""
    parts = d2.split(".")
    if parts[0] == "stem":
        return "conv1." + parts[-1] if parts[2] != "norm" else "bn1." + parts[-1]
    layer = f"layer{int(parts[0][3:]) - 1}.{parts[1]}"
    if parts[2] == "shortcut":
        return f"{layer}.downsample.{1 if parts[3] == 'norm' else 0}.{parts[-1]}"
    if parts[3] == "norm":
        return f"{layer}.bn{parts[2][4:]}.{parts[-1]}"
    return f"{layer}.{parts[2]}.{parts[-1]}"


def test_backbone_init_from_torchvision_pth_and_detectron2_pkl(tmp_path):
    model = calibnet.build_model(tiny_cfg(), eval_mode=False, quiet=True)
    own = model.backbone.state_dict()
    g = torch.Generator().manual_seed(1)
    fake = {k: torch.randn(v.shape, generator=g) for k, v in own.items()}
    tv = {_torchvision_name(k): v for k, v in fake.items()}
    assert all(torchvision_to_d2(k) == d for k, d in zip(tv, fake))
    tv["fc.weight"] = torch.zeros(1000, 512)
    tv["bn1.num_batches_tracked"] = torch.tensor(5)
    torch.save(tv, tmp_path / "resnet18.pth")
    counts = init_backbones(model, tmp_path / "resnet18.pth", quiet=True)
    assert counts == {"backbone": len(own), "backbonedepth": len(own)}
    for k, v in fake.items():
        assert torch.equal(model.backbone.state_dict()[k], v) and torch.equal(model.backbonedepth.state_dict()[k], v)

    d2 = {k: (v * 2).numpy() for k, v in fake.items()}
    with (tmp_path / "R-18.pkl").open("wb") as f:
        pickle.dump({"model": d2, "__author__": "torchvision", "matching_heuristics": True}, f)
    init_backbones(model, tmp_path / "R-18.pkl", quiet=True)
    assert torch.equal(model.backbonedepth.state_dict()["res5.1.conv2.weight"], fake["res5.1.conv2.weight"] * 2)

    r50 = calibnet.build_model(get_config("r50").replace(**{"decoder.num_kernels": 10}), eval_mode=False, quiet=True)
    torch.save({"model": r50.state_dict()}, tmp_path / "r50.pth")
    with pytest.raises(BackboneInitError, match="MODEL.RESNETS.DEPTH"):
        init_backbones(model, tmp_path / "r50.pth", quiet=True)


def test_config_yaml_round_trip(tmp_path):
    cfg = tiny_cfg().replace(**{"encoder.num_layers": 1, "solver.base_lr": 3e-4, "solver.steps": (5, 9)})
    path = write_config_yaml(cfg, tmp_path / "config.yaml", "a header")
    back = CalibNetConfig.from_yaml(path)
    a, b = cfg.to_dict(), back.to_dict()
    a.pop("source"), b.pop("source")
    assert a == b


@pytest.mark.slow
def test_cli_trains_writes_a_usable_run_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--config", "r18", "--synthetic", "stream", "--batch", "1", "--out", str(out), "--no-progress",
            "--lr", "1e-4", "--warmup-iters", "0", "--eval-scenes", "0"]
    base += [f"--set={k}={v}" for k, v in TINY.items()]
    assert train_main([*base, "--iters", "2"]) == 0
    assert "trained 2 iterations" in capsys.readouterr().out
    cfg = get_config(out / "config.yaml")
    assert cfg.decoder.num_kernels == 10 and cfg.input.min_size_test == 64 and cfg.solver.max_iter == 2
    model = calibnet.build_model(out / "config.yaml", weights=out / "model_final.pth", quiet=True)
    assert model.cfg.backbone.depth == 18
    assert train_main([*base, "--iters", "3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "at iteration 2" in err
    assert torch.load(out / "model_final.pth", weights_only=True)["iteration"] == 3


@pytest.mark.parametrize("args, message", [
    (["--synthetic", "lots"], "--synthetic wants"),
    (["--config", "r18"], "no training data"),
    (["--synthetic", "stream", "--config", "nope"], "unknown config"),
    (["--synthetic", "stream", "--config", "r18", "--set", "decoder.nope=1"], "unknown config field"),
    (["--synthetic", "stream", "--config", "r18", "--init-backbone", "/no/such.pth"], "not found"),
    (["--config", "r18", "--train-json", "/no/such.json"], "annotation file not found: /no/such.json"),
])
def test_cli_user_errors_are_one_line(args, message, tmp_path, capsys):
    assert train_main([*args, "--out", str(tmp_path / "x"), "--iters", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("calibnet-train: error:") and message in err[0], err


def test_cli_resume_without_a_checkpoint(tmp_path, capsys):
    code = train_main(["--synthetic", "stream", "--config", "r18", "--out", str(tmp_path), "--resume",
                       "--no-progress"])
    assert code == 2 and "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_on_a_written_data_set_through_the_data_loader(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--config", "r18", "--synthetic", "4", "--batch", "2", "--iters", "1", "--out", str(out),
            "--no-progress", "--warmup-iters", "0", "--workers", "0"] + [f"--set={k}={v}" for k, v in TINY.items()]
    assert train_main(args) == 0
    assert (out / "synthetic_train" / "annotations.json").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")


def test_training_package_and_cli_parser_import_without_torch():
    import subprocess
    import sys

    from conftest import BLOCK_TORCH

    code = BLOCK_TORCH + ("import calibnet.training, calibnet.cli.train as c\n"
                          "c.build_parser().parse_args(['--recipe', 'synthetic-r18'])\n"
                          "print(sorted(calibnet.training.RECIPES))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "synthetic-r18" in out.stdout


def test_plan_merges_recipe_and_command_line():
    from calibnet.cli.train import build_parser, train_request
    from calibnet.training.plan import resolve_plan

    parse = build_parser().parse_args
    plan = resolve_plan(train_request(parse(["--recipe", "synthetic-r18", "--iters", "300", "--lr", "1e-4"])))
    s = plan.cfg.solver
    assert (s.max_iter, s.steps, s.base_lr, s.ims_per_batch, plan.synthetic) == (300, (240,), 1e-4, 4, "stream")
    assert plan.cfg.decoder.num_kernels == 10
    data_run = resolve_plan(train_request(parse(["--train-json", "a.json", "--eval-scenes", "5"])))
    assert data_run.eval_scenes == 0 and "--eval-scenes applies to synthetic training" in data_run.notes[0]


def test_depth_augment_flag_and_plan():
    from calibnet.cli.train import build_parser, train_request
    from calibnet.data.transforms import DEFAULT_DEPTH_AUGMENT
    from calibnet.training.plan import TrainError, resolve_plan

    def plan(*argv):
        return resolve_plan(train_request(build_parser().parse_args(["--recipe", "synthetic-r18", *argv])))

    assert plan().depth_augment == 0.0
    assert plan("--depth-augment").depth_augment == DEFAULT_DEPTH_AUGMENT
    assert plan("--depth-augment", "0.2").depth_augment == 0.2
    with pytest.raises(TrainError, match="--depth-augment wants a probability"):
        plan("--depth-augment", "1.5")


def test_depth_augment_corrupts_training_depth_with_the_evaluation_code():
    import numpy as np

    from calibnet.data.transforms import DepthAugment
    from calibnet.evaluation.depth_corruptions import corrupt_depth

    plain = tiny_source()
    always = SyntheticBatches(**{**plain.__dict__, "depth_augment": DepthAugment(1.0, ("missing",))})
    never = SyntheticBatches(**{**plain.__dict__, "depth_augment": DepthAugment(0.0)})
    a, b, c = plain.batch(2), always.batch(2), never.batch(2)
    assert torch.equal(a["depth"], c["depth"]) and torch.equal(a["rgb"], b["rgb"])  # only the depth changes
    h, w = (int(v) for v in a["image_sizes"][0])
    assert (b["depth"][0, 0, :h, :w] == 0).all() and not (a["depth"][0, 0, :h, :w] == 0).all()
    mixed = SyntheticBatches(**{**plain.__dict__, "batch_size": 8, "depth_augment": DepthAugment(0.5)})
    x, y = mixed.batch(0), mixed.batch(0)
    assert torch.equal(x["depth"], y["depth"])  # deterministic per iteration
    ref = SyntheticBatches(**{**plain.__dict__, "batch_size": 8}).batch(0)
    changed = [not torch.equal(x["depth"][i], ref["depth"][i]) for i in range(8)]
    assert 0 < sum(changed) < 8  # some corrupted, some not (seeded draws with p = 0.5)
    rng = np.random.default_rng(0)
    d = np.full((40, 60), 100, np.uint8)
    d[10:30, 20:40] = 30
    expect = np.random.default_rng(0)
    expect.random(), expect.integers(1), expect.integers(1)
    out = DepthAugment(1.0, ("holes",), (3,))(d, rng)
    np.testing.assert_array_equal(out, corrupt_depth(d, "holes", 3, int(expect.integers(2**31))))
