"""Named training recipes: a config, data and schedule that reproduce a documented result.

``synthetic-r18`` trains CalibNet with ResNet-18 backbones from scratch (no ImageNet weights) on an
endless stream of synthetic RGB-D scenes (320x480, resized like the runtime to 128x192), then
evaluates mask AP/AP50/AP70 on held-out synthetic scenes through ``calibnet.runtime``. It fits a
2-core CPU in well under 20 minutes.

``come15k-swint``, ``come15k-pvt``, ``come15k-p2t`` are the official schedules of the transformer configs
(their YAMLs: ``Base-CalibNet.yaml``'s AdamW, 4 images per batch, lr 2.5e-5, 100k iterations, drops at 70k
and 90k, detectron2's 1000 warm-up iterations) on COME15K; they bring no data of their own: pass
``--dataset come15k_train --data-root DIR`` and the ImageNet weights of the backbone release with
``--init-backbone`` (``swin_tiny_patch4_window7_224_22k.pth``, ``pvt_v2_b2_li.pth``, ``p2t_large.pth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECIPES", "Recipe"]


@dataclass(frozen=True)
class Recipe:
    """A config preset plus overrides, the data, the schedule and the held-out evaluation."""

    name: str
    description: str
    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    synthetic: str | None = "stream"  # None: the data come from the command line (--dataset, --train-json)
    scene_hw: tuple[int, int] = (320, 480)
    iters: int = 600
    batch: int = 4
    lr: float = 2e-4
    steps: tuple[int, ...] = (480,)
    warmup_iters: int = 50
    eval_scenes: int = 100
    eval_seed: int = 0
    out: str = "out/train"


RECIPES: dict[str, Recipe] = {
    "synthetic-r18": Recipe(
        name="synthetic-r18",
        description="R18 backbones from scratch, 1-layer encoders, 10 kernels, 128x192 input, synthetic scenes",
        config="r18",
        overrides={
            "decoder.num_kernels": 10,
            "encoder.num_layers": 1,
            "encoder_depth.num_layers": 1,
            "input.min_size_train": (128,),
            "input.max_size_train": 192,
            "input.min_size_test": 128,
            "input.max_size_test": 192,
        },
        out="out/train-r18",
    ),
    **{
        f"come15k-{variant}": Recipe(
            name=f"come15k-{variant}",
            description=f"official {label} schedule on COME15K (100k it, batch 4, lr 2.5e-5, drops 70k/90k); "
                        f"--dataset come15k_train --data-root DIR --init-backbone {weights}",
            config=variant, synthetic=None, iters=100000, batch=4, lr=2.5e-5, steps=(70000, 90000),
            warmup_iters=1000, eval_scenes=0, out=f"out/train-{variant}")
        for variant, label, weights in (("swint", "Swin-T", "swin_tiny_patch4_window7_224_22k.pth"),
                                        ("pvt", "PVTv2-B2-Li", "pvt_v2_b2_li.pth"),
                                        ("p2t", "P2T-Large", "p2t_large.pth"))
    },
}
