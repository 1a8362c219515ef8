"""DDP: two gloo processes train a few iterations; parameters stay identical across ranks and the first
step equals one step on the average of the two ranks' gradients."""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet import get_config  # noqa: E402
from calibnet.training.batches import SyntheticBatches, collate_arrays  # noqa: E402
from calibnet.training.losses import CalibNetCriterion  # noqa: E402
from calibnet.training.solver import SolverOptions  # noqa: E402

TINY = {"decoder.num_kernels": 10, "input.min_size_train": (64,), "input.max_size_train": 96}
LR = 1e-4
ITERS = 3


def _cfg():
    return get_config("r18").replace(**TINY)


class EqualCountBatches:
    """Batches of two scenes with exactly two instances each, different per rank and iteration.

    With equal instance counts on both ranks, the all-reduced instance normalization equals each
    rank's own count, so a single process can reproduce the DDP step from per-rank gradients.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.scenes = SyntheticBatches(height=96, width=144, short=64, max_size=96, n_salient=(2, 2),
                                       n_clutter=(2, 2))

    def batch(self, iteration: int):
        picked, seed = [], 50_000 + 1_000 * (2 * iteration + self.rank)
        while len(picked) < 2:
            rgb, depth, masks = self.scenes.scene(seed)
            if len(masks) == 2:
                picked.append((rgb, depth, masks))
            seed += 1
        return collate_arrays(*zip(*picked))


def _worker(rank: int, world: int, out_dir: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from calibnet.training.distributed import cleanup, init_from_env
    from calibnet.training.trainer import Trainer, TrainOptions

    info = init_from_env("cpu")
    assert info.distributed and info.rank == rank and torch.distributed.get_backend() == "gloo"
    model = calibnet.build_model(_cfg(), seed=0, eval_mode=False, quiet=True)
    opts = TrainOptions(max_iter=ITERS, solver=SolverOptions(base_lr=LR, warmup_iters=0), progress=False,
                        tensorboard=False)
    trainer = Trainer(model, EqualCountBatches(rank), opts, dist_info=info)
    trainer.train(max_iter=1)
    params = lambda: {k: v.detach().clone() for k, v in trainer.model.named_parameters()}  # noqa: E731
    grads = {k: v.grad.clone() for k, v in trainer.model.named_parameters() if v.grad is not None}
    torch.save({"params": params(), "grads": grads}, os.path.join(out_dir, f"rank{rank}_step1.pt"))
    hist = trainer.train(max_iter=ITERS)
    torch.save({"params": params(), "losses": [h["total_loss"] for h in hist]},
               os.path.join(out_dir, f"rank{rank}_final.pt"))
    cleanup(info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_parameters(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, str(tmp_path), _free_port()), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0_final.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1_final.pt", weights_only=True)
    assert len(r0["losses"]) == ITERS and all(torch.isfinite(torch.tensor(r0["losses"] + r1["losses"])))
    assert r0["losses"] != r1["losses"]  # the ranks saw different data ...
    for k, v in r0["params"].items():  # ... yet hold bitwise identical parameters
        assert torch.equal(v, r1["params"][k]), k

    # the first DDP step == one AdamW step on the mean of the two ranks' gradients (single process)
    from calibnet.training.solver import build_optimizer

    model = calibnet.build_model(_cfg(), seed=0, eval_mode=False, quiet=True)
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    crit = CalibNetCriterion(model.cfg.loss)
    for rank in range(2):
        b = EqualCountBatches(rank).batch(0)
        out = model(b["rgb"], b["depth"], b["image_sizes"])
        (CalibNetCriterion.total(crit(out, b["masks"], b["rgb"].shape[-2:])) / 2).backward()
    step1 = torch.load(tmp_path / "rank0_step1.pt", weights_only=True)
    grads = {k: v.grad for k, v in model.named_parameters() if v.grad is not None}
    assert grads.keys() == step1["grads"].keys() and len(grads) > 100
    # all-reduced gradient == mean of the per-rank gradients, up to float noise (the workers run 1 thread,
    # this process more, so sums are ordered differently). Some biases sit before a normalization: their
    # exact gradient is 0 and what is left is noise, hence a floor relative to the typical gradient norm.
    floor = 1e-4 * torch.tensor([g.norm().item() for g in grads.values()]).median().item()
    for k, g in grads.items():
        diff = (step1["grads"][k] - g).norm().item()
        assert diff <= 1e-3 * g.norm().item() + floor, (k, diff, g.norm().item())
    # and the optimizer stepped with that all-reduced gradient
    for k, v in model.named_parameters():
        with torch.no_grad():
            v.copy_(init[k])
        v.grad = step1["grads"].get(k)
    opt = build_optimizer(model, SolverOptions(base_lr=LR, warmup_iters=0))
    opt.step()
    moved = 0
    for k, v in model.named_parameters():
        assert torch.allclose(step1["params"][k], v.detach(), rtol=0, atol=LR * 1e-4), k
        moved += int(not torch.equal(step1["params"][k], init[k]))
    assert moved > 100
