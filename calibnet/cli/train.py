"""calibnet-train: train CalibNet on RGB-D instance data (or synthetic scenes), on CPU, one GPU or torchrun DDP.

Examples:
  # the documented benchmark: R18 from scratch on synthetic scenes, then AP/AP50/AP70 on held-out scenes
  calibnet-train --recipe synthetic-r18 --out out/train-r18
  calibnet-demo --config out/train-r18/config.yaml --weights out/train-r18/model_final.pth \\
      --height 128 --width 192

  # fine-tune the official R50 on COME15K (ImageNet-initialized backbones from your own file)
  calibnet-train --config r50 --dataset come15k_train --data-root datasets \\
      --init-backbone R-50.pkl --iters 100000 --batch 4 --out out/r50

  # your own COCO-json data set with depth maps
  calibnet-train --config r18 --train-json ann/train.json --image-root rgb/ --depth-root depth/ --out out/mine

  # depth-robust training: half of the training depth maps get a depth-sensor failure (holes, edge dropout,
  # noise, quantization, shift, blur, missing, wrong direction; the corruptions calibnet-eval evaluates)
  calibnet-train --recipe synthetic-r18 --depth-augment --out out/train-r18-aug

  # continue an interrupted run (model, optimizer, scheduler, iteration and RNG state)
  calibnet-train --recipe synthetic-r18 --out out/train-r18 --resume

  # two processes with DDP (gloo on CPU, nccl on GPUs); --batch is per process
  torchrun --nproc_per_node 2 -m calibnet.cli.train --recipe synthetic-r18 --out out/ddp

Writes to --out: config.yaml (official YAML keys; give it to --config of calibnet-demo/-export/-eval),
model_final.pth (detectron2 format {"model": ...} plus the training state), periodic
model_NNNNNNN.pth, last_checkpoint, metrics.csv (loss terms, lr, seconds per iteration) and
TensorBoard events when tensorboard is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import calibnet.data as data
from calibnet.data.synthetic import scene_seed
from calibnet.data.transforms import DEFAULT_DEPTH_AUGMENT, DepthAugment
from calibnet.training.plan import TrainError, TrainPlan, TrainRequest, resolve_plan
from calibnet.training.recipes import RECIPES

from ..config import write_config_yaml
from ..training.batches import LoaderBatches, SyntheticBatches
from .app import parser, run_cli
from .options import (
    add_checkpoint,
    add_dataset,
    add_output,
    add_threads,
    checkpoint_files,
    dataset_specs,
    typed_options,
)

#: data-set seed of the synthetic training scenes (calibnet.data.synthetic.scene_seed(seed, i) =
#: seed * 1e6 + i); the held-out evaluation scenes use data-set seed 0, so the two never overlap
TRAIN_SET_SEED = 1


def build_parser() -> argparse.ArgumentParser:
    """The calibnet-train argument parser."""
    p = parser("calibnet-train", __doc__)
    g = add_checkpoint(p.add_argument_group("model"), config_default=None,
                       weights_help="start from these model weights (a calibnet/official checkpoint)")
    g.add_argument("--recipe", choices=sorted(RECIPES), help="a documented recipe (config, data, schedule, eval); "
                   "other options override it")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override by dotted field, e.g. --set decoder.num_kernels=10 (repeatable)")
    g.add_argument("--init-backbone", metavar="FILE", help="ImageNet weights for both backbones: a torchvision "
                   "ResNet checkpoint or a detectron2 pickle; the Swin/PVTv2/P2T releases' files "
                   "(swin_tiny_patch4_window7_224_22k.pth, pvt_v2_b2_li.pth, p2t_large.pth); your local file, nothing "
                   "is downloaded")
    g = p.add_argument_group("data (one of)")
    g.add_argument("--depth-augment", nargs="?", type=float, const=DEFAULT_DEPTH_AUGMENT, metavar="P",
                   help="corrupt each training depth map with probability P (default when given without a value: "
                        f"{DEFAULT_DEPTH_AUGMENT}) by one of calibnet.evaluation.depth_corruptions at a random "
                        "severity, the corruptions calibnet-eval --depth-corruption evaluates")
    g.add_argument("--synthetic", metavar="N|stream", help="synthetic scenes: 'stream' = endless fresh scenes, "
                   "N = a fixed set of N scenes written to OUT/synthetic_train")
    add_dataset(g, json_flags=("--train-json",), several=False, data_root_default="datasets")
    g = p.add_argument_group("schedule")
    g.add_argument("--iters", type=int, help="optimizer steps (default: config SOLVER.MAX_ITER or the recipe's)")
    g.add_argument("--batch", type=int, help="images per step and process (default: config IMS_PER_BATCH)")
    g.add_argument("--lr", type=float, help="base learning rate (default: config BASE_LR = 2.5e-5)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (default: config, 1e-4)")
    g.add_argument("--steps", type=lambda s: tuple(int(x) for x in s.split(",") if x), metavar="I,J",
                   help="iterations where the rate drops by --gamma (default: config SOLVER.STEPS)")
    g.add_argument("--gamma", type=float, help="rate factor at each step (default 0.1)")
    g.add_argument("--warmup-iters", type=int, help="linear warm-up iterations (detectron2 default 1000)")
    g.add_argument("--clip-grad", type=float, help="clip the global gradient norm to this value (0 = off)")
    g.add_argument("--no-amp", action="store_true", help="disable mixed precision (AMP is used on CUDA only)")
    g = p.add_argument_group("run")
    add_output(g, None, "output folder (default: the recipe's, else out/train)")
    g.add_argument("--resume", nargs="?", const="", metavar="FILE",
                   help="continue from FILE, or from OUT/last_checkpoint when no FILE is given")
    g.add_argument("--checkpoint-period", type=int, default=None, help="save every N iterations (default: "
                   "config CHECKPOINT_PERIOD; 0 = only the final one)")
    g.add_argument("--eval-scenes", type=int, default=None,
                   help="held-out synthetic scenes to evaluate at the end (synthetic runs; default: recipe's or 0)")
    g.add_argument("--eval-period", type=int, default=0, help="also evaluate every N iterations (default 0 = off)")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: config NUM_WORKERS)")
    g.add_argument("--seed", type=int, default=0, help="model-initialization and data seed (default 0)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if available")
    add_threads(g)
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def train_request(args: argparse.Namespace) -> TrainRequest:
    """The typed request of parsed ``calibnet-train`` arguments."""
    return typed_options(TrainRequest, args, overrides=tuple(args.set), dataset=bool(args.dataset or args.json))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-train``: every error ends in one line (a bad checkpoint file named)."""
    return run_cli("calibnet-train", build_parser(), _run, argv,
                   files=lambda a: [*checkpoint_files(a), a.init_backbone, a.resume or None])


def _make_source(args: argparse.Namespace, plan: TrainPlan, info: Any) -> Any:
    """The batch source for this process."""
    from ..training.distributed import barrier

    cfg, (h, w) = plan.cfg, plan.scene_hw
    augment = DepthAugment(plan.depth_augment) if plan.depth_augment else None
    if plan.synthetic == "stream":
        return SyntheticBatches(batch_size=cfg.solver.ims_per_batch, height=h, width=w,
                                short=cfg.input.min_size_train[0], max_size=cfg.input.max_size_train,
                                seed=scene_seed(TRAIN_SET_SEED + args.seed, 0), rank=info.rank,
                                world_size=info.world_size, depth_augment=augment)

    folder = plan.out / "synthetic_train"
    if plan.synthetic is not None and info.rank == 0:
        data.write_synthetic_dataset(folder, int(plan.synthetic), seed=TRAIN_SET_SEED + args.seed, height=h,
                                     width=w, name="synthetic_train")
    barrier()
    try:
        spec = (data.synthetic_dataset_spec(folder, "synthetic_train") if plan.synthetic
                else dataset_specs(args)[0])
        dataset = data.RGBDInstanceDataset(spec, cfg.input, train=True, depth_augment=augment)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # DatasetError is a ValueError
        raise TrainError(str(exc)) from None

    def make_loader(start_iter: int) -> Any:
        return data.build_train_loader(dataset, cfg.solver.ims_per_batch, num_workers=plan.workers,
                                       distributed=info.distributed, seed=args.seed, start_iter=start_iter)

    return LoaderBatches(make_loader)


def _run(args: argparse.Namespace) -> int:
    plan = resolve_plan(train_request(args))
    import torch

    from calibnet.builder import build_model
    from calibnet.checkpoint import CheckpointMismatchError

    from ..training.backbone_init import BackboneInitError, init_backbones
    from ..training.checkpointing import find_resume_file
    from ..training.distributed import cleanup, init_from_env
    from ..training.solver import SolverOptions
    from ..training.trainer import Trainer, TrainOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: CUDA is not available")
    info = init_from_env(args.device)
    try:
        cfg, out = plan.cfg, plan.out
        main_rank = info.rank == 0
        resume_file = None if args.resume is None else find_resume_file(args.resume or out, out)
        source = _make_source(args, plan, info)  # data errors before the model is built
        try:
            model = build_model(cfg, args.weights, seed=args.seed, eval_mode=False, quiet=True)
            if args.init_backbone and resume_file is None:
                init_backbones(model, args.init_backbone, quiet=not main_rank)
        except (FileNotFoundError, BackboneInitError, CheckpointMismatchError, RuntimeError) as exc:
            raise TrainError(str(exc)) from None
        if main_rank and not args.weights and not args.init_backbone and resume_file is None:
            print("note: training from scratch (no --init-backbone ImageNet weights, no --weights)", file=sys.stderr)
        s = cfg.solver
        solver = SolverOptions(base_lr=s.base_lr, weight_decay=s.weight_decay, steps=s.steps, gamma=s.gamma,
                               warmup_iters=plan.warmup_iters, clip_grad_norm=s.clip_gradients, amsgrad=s.amsgrad,
                               backbone_multiplier=s.backbone_multiplier)
        for note in plan.notes if main_rank else ():
            print(f"note: {note}", file=sys.stderr)
        eval_spec = None
        if plan.eval_scenes and main_rank:
            from ..training.evaluate import evaluate_model

            h, w = plan.scene_hw  # PNG images, like the training stream; seed 0 never meets TRAIN_SET_SEED's scenes
            eval_spec = data.write_synthetic_dataset(out / "synthetic_heldout", plan.eval_scenes, seed=plan.eval_seed,
                                                     height=h, width=w, image_format="png", name="synthetic_heldout")
        eval_fn = None
        if eval_spec is not None and args.eval_period:
            def eval_fn(m: torch.nn.Module, it: int) -> dict[str, float]:
                return evaluate_model(m, eval_spec, out / f"eval_{it:07d}", progress=False)

        opts = TrainOptions(max_iter=s.max_iter, solver=solver, out_dir=out,
                            checkpoint_period=plan.checkpoint_period, amp=not args.no_amp,
                            progress=not args.no_progress,
                            eval_period=args.eval_period if plan.eval_scenes else 0, config=cfg.to_dict())
        trainer = Trainer(model, source, opts, dist_info=info, eval_fn=eval_fn)
        if resume_file is not None:
            try:
                start = trainer.resume(resume_file)
            except (RuntimeError, KeyError, ValueError) as exc:
                raise TrainError(f"cannot resume from {resume_file}: {exc}") from None
            if main_rank:
                print(f"resumed from {resume_file} at iteration {start}", file=sys.stderr)
            if start >= s.max_iter:
                raise TrainError(f"{resume_file} is at iteration {start}, not below --iters {s.max_iter}")
        if main_rank:
            out.mkdir(parents=True, exist_ok=True)
            header = f"written by calibnet-train ({args.recipe or 'custom'}); pass to --config of calibnet tools"
            write_config_yaml(cfg, out / "config.yaml", header)
        t0 = time.perf_counter()
        history = trainer.train()
        train_s = time.perf_counter() - t0
        summary: dict[str, Any] = {
            "iterations": trainer.iteration, "train_seconds": round(train_s, 1),
            "final_loss": round(history[-1]["total_loss"], 4) if history else None,
            "checkpoint": str(out / "model_final.pth"), "config": str(out / "config.yaml"),
            "world_size": info.world_size, "device": str(info.device), "depth_augment": plan.depth_augment,
        }
        if eval_spec is not None:
            t1 = time.perf_counter()
            metrics = evaluate_model(trainer.model, eval_spec, out / "eval_final", progress=not args.no_progress)
            summary.update(eval_seconds=round(time.perf_counter() - t1, 1), eval_scenes=plan.eval_scenes)
            summary.update({k: round(float(metrics[k]), 2) for k in ("AP", "AP50", "AP70") if k in metrics})
        if main_rank:
            summary["total_seconds"] = round(time.perf_counter() - t0, 1)
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if "AP50" in summary:
                print(f"AP {summary['AP']:.2f}  AP50 {summary['AP50']:.2f}  AP70 {summary['AP70']:.2f}  "
                      f"(mask, {plan.eval_scenes} held-out synthetic scenes)")
            print(f"trained {trainer.iteration} iterations in {train_s / 60:.1f} min "
                  f"(total {summary['total_seconds'] / 60:.1f} min); checkpoint {summary['checkpoint']}")
            print(json.dumps(summary))
        return 0
    finally:
        cleanup(info)


if __name__ == "__main__":
    sys.exit(main())
