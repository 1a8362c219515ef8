"""Parameters and MACs of a CalibNet, in the conventions of the paper and of deployment.

- Parameters: :func:`calibnet.count_parameters` -- the paper counts ``model.parameters()`` of the whole
  training model, the four training-only coarse predictors included (R50: 78,901,550 -> "78.9M"); a
  deployed model holds ``without_aux`` of them (77,719,850). Frozen-BN statistics are buffers, not counted.
- MACs: :mod:`calibnet.benchmarks.flops` (fvcore's rules, one multiply-add = one "flop"), at the
  benchmarked network size and at the padded sizes the official test resize gives common data-set aspect
  ratios, which is what the paper's GFLOPs figure was measured on: the official ``tools/get_flops.py``
  averages fvcore counts over the first 100 test images, each resized (short side 320, long side <= 480)
  and padded to a multiple of 32 by detectron2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from calibnet.params import count_parameters
from calibnet.runtime.core.resize import shortest_edge_size

from .flops import MacCount, count_model_macs

__all__ = ["PAPER", "BACKBONE_TABLE", "OFFICIAL_GMACS", "DATASET_FRAMES", "SizeCount", "ModelStats", "model_stats",
           "padded_network_size", "backbone_label"]

#: The paper's efficiency figures (CalibNet R50, IEEE TIP 2024) and where they were measured.
PAPER: dict[str, Any] = {
    "params_m": 78.9,
    "gflops": 90.2,
    "fps": 35.9,
    "fps_device": "NVIDIA RTX 3090 (GPU), 320x480 input",
    "gflops_convention": "fvcore (1 multiply-add = 1 flop), mean over test images",
    "params_convention": "model.parameters() of the training model, aux heads included",
}

#: The official backbone table: COME15K-E / COME15K-H test mask AP of each released model (official README,
#: "Pre-trained Models") and the parameters of the official code for that config (whole training model, aux
#: heads included; counted by instantiating it: ../shared/official manifest_*.json).
BACKBONE_TABLE: tuple[dict[str, Any], ...] = (
    {"backbone": "ResNet-50", "name": "build_resnet_backbone", "depth": 50, "params": 78_901_550,
     "ap_come15k_e": 58.0, "ap_come15k_h": 50.7},
    {"backbone": "ResNet-101", "name": "build_resnet_backbone", "depth": 101, "params": 116_781_358,
     "ap_come15k_e": 58.5, "ap_come15k_h": 51.5},
    {"backbone": "Swin-T", "name": "D2SwinTransformer", "params": 75_973_922, "ap_come15k_e": 60.0,
     "ap_come15k_h": 52.6},
    {"backbone": "PVTv2-B2-Li", "name": "build_pyramid_vision_transformer", "params": 63_096_622,
     "ap_come15k_e": 60.7, "ap_come15k_h": 53.7},
    {"backbone": "P2T-Large", "name": "build_p2t_backbone", "params": 128_559_614, "ap_come15k_e": 61.8,
     "ap_come15k_h": 54.4},
)

#: Official fvcore counts of the transformer variants (GMACs by network size; ../shared/official/
#: flops_transformers.json). Those runs did not count the grid sampler of the deformable attention (the R50
#: count does), so they compare with ``MacCount.total - MacCount.msda_sampling``. No official P2T count
#: exists: fvcore's tracer fails on the official P2T (Python round() of a traced size).
OFFICIAL_GMACS: dict[str, dict[tuple[int, int], float]] = {
    "D2SwinTransformer": {(320, 480): 92.15, (320, 448): 84.34, (288, 480): 83.99},
    "build_pyramid_vision_transformer": {(320, 480): 82.32, (320, 448): 76.87, (288, 480): 74.14},
}


def backbone_label(cfg: Any) -> str:
    """The backbone's name as in the official table (``ResNet-50``, ``Swin-T``, ...), or the config name."""
    for row in BACKBONE_TABLE:
        if row["name"] == cfg.backbone.name and row.get("depth", cfg.backbone.depth) == cfg.backbone.depth:
            return str(row["backbone"])
    return f"ResNet-{cfg.backbone.depth}" if cfg.backbone.name == "build_resnet_backbone" else cfg.backbone.name


#: Example frames of common aspect ratios: (label, height, width) before the official resize.
DATASET_FRAMES: tuple[tuple[str, int, int], ...] = (
    ("3:2 landscape (720x480)", 480, 720),
    ("4:3 landscape (640x480)", 480, 640),
    ("3:4 portrait (480x640)", 640, 480),
    ("16:9 landscape (1280x720)", 720, 1280),
    ("1:1 (480x480)", 480, 480),
)


def padded_network_size(h: int, w: int, short: int, max_size: int, divisor: int = 32
                        ) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resized (h, w), padded (H, W)) of a frame under the official ResizeShortestEdge + pad."""
    rh, rw = shortest_edge_size(h, w, short, max_size)
    return (rh, rw), (-(-rh // divisor) * divisor, -(-rw // divisor) * divisor)


@dataclass
class SizeCount:
    """MACs at one network input size."""

    label: str
    frame_hw: tuple[int, int] | None
    resized_hw: tuple[int, int]
    network_hw: tuple[int, int]
    gmacs: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "frame_hw": list(self.frame_hw) if self.frame_hw else None,
                "resized_hw": list(self.resized_hw), "network_hw": list(self.network_hw), "gmacs": self.gmacs,
                "gflops_2x_macs": 2 * self.gmacs}


@dataclass
class ModelStats:
    """Parameters and MACs of one model at one benchmarked size, plus data-set sizes."""

    params_total: int
    params_without_aux: int
    params_by_module: dict[str, int]
    macs: MacCount
    network_hw: tuple[int, int]
    sizes: list[SizeCount] = field(default_factory=list)
    paper_model: bool = False  # the paper's R50 at the official resize: compare with its 90.2G
    backbone: str = ""  # BACKBONE.NAME of the model
    backbone_label: str = ""  # e.g. "Swin-T"

    def explain_paper_gflops(self) -> list[str]:
        """Sentences relating the paper's 90.2G to the counts here."""
        main = self.macs.gmacs
        lines = [f"fvcore-convention count at {self.network_hw[0]}x{self.network_hw[1]}: {main:.2f} GMACs "
                 f"(= {2 * main:.1f} GFLOPs when a multiply and an add count separately); paper: "
                 f"{PAPER['gflops']} G (fvcore convention, mean over test images)."]
        official = OFFICIAL_GMACS.get(self.backbone, {})
        if self.backbone == "build_p2t_backbone":
            lines.append("P2T has no official count (fvcore's tracer fails on the official P2T: Python round() of a "
                         "traced size); this count applies the same fvcore rules to the ops the eager model runs "
                         "(ATen level; adaptive average pooling 1 MAC per input element, as fvcore's handle).")
        elif official:
            no_sampling = self.macs.gmacs - self.macs.msda_sampling / 1e9
            ref = official.get(tuple(self.network_hw))  # type: ignore[call-overload]
            lines.append(f"without the deformable-attention grid-sampler term (the convention of the official "
                         f"{self.backbone_label} count): {no_sampling:.2f} G"
                         + (f"; official fvcore count {ref} G" if ref is not None else
                            f"; official counts exist at {', '.join(f'{h}x{w}' for h, w in official)}"))
        if not self.sizes:
            return lines
        lines.append("Counts at the padded network sizes of common aspect ratios: " + "; ".join(
            f"{s.label} -> {s.resized_hw[0]}x{s.resized_hw[1]} padded to {s.network_hw[0]}x{s.network_hw[1]}: "
            f"{s.gmacs:.1f} G" for s in self.sizes) + ".")
        if not self.paper_model:
            return lines
        best = min(self.sizes, key=lambda s: abs(s.gmacs - PAPER["gflops"]))
        lines.append("The paper's figure comes from the official tools/get_flops.py, which averages fvcore counts over "
                     "100 test images, each resized (short side 320, long side <= 480) and zero-padded to a multiple "
                     "of 32, so it depends on the images' aspect ratios.")
        lines.append(f"Closest to {PAPER['gflops']} G: {best.label} ({best.gmacs:.2f} G, "
                     f"{100 * (best.gmacs / PAPER['gflops'] - 1):+.1f}%); a mix of aspect ratios averaging a padded "
                     f"area about {PAPER['gflops'] / main:.3f}x that of {self.network_hw[0]}x{self.network_hw[1]} "
                     f"gives the same mean. Counting the unpadded 320x427 area of a 4:3 image instead gives "
                     f"{main * 320 * 427 / (self.network_hw[0] * self.network_hw[1]):.1f} G by area.")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": {"name": self.backbone, "label": self.backbone_label},
            "params": {"total": self.params_total, "without_aux": self.params_without_aux,
                       "by_module": dict(self.params_by_module),
                       "paper_convention": "total (model.parameters() of the training model, aux heads "
                                           "included): 78,901,550 -> 78.9M for R50"},
            "gmacs": self.macs.gmacs,
            "gflops_2x_macs": self.macs.gflops,
            "flops": {**self.macs.to_dict(), "network_hw": list(self.network_hw),
                      "convention": "fvcore: one multiply-add = one flop; conv, matmul/linear/bmm, norms, "
                                    "upsample, grid-sampler handles; element-wise ops not counted",
                      "dataset_sizes": [s.to_dict() for s in self.sizes],
                      "paper_gflops_explained": self.explain_paper_gflops()},
        }


def model_stats(model: nn.Module, height: int, width: int, dataset_sizes: bool = True) -> ModelStats:
    """Parameter counts and MACs of ``model`` at ``height`` x ``width`` (and at data-set sizes)."""
    params = count_parameters(model)
    macs = count_model_macs(model, height, width)
    cfg: Any = model.cfg
    stats = ModelStats(params.total, params.without_aux, dict(params.by_module), macs, (height, width),
                       backbone=cfg.backbone.name, backbone_label=backbone_label(cfg))
    if dataset_sizes:
        short, max_size = cfg.input.min_size_test, cfg.input.max_size_test
        divisor = cfg.input.size_divisibility
        stats.paper_model = (stats.backbone_label == "ResNet-50" and (short, max_size) == (320, 480)
                             and cfg.decoder.num_kernels == 50)
        cache: dict[tuple[int, int], float] = {(height, width): macs.gmacs}
        for label, h, w in DATASET_FRAMES:
            resized, padded = padded_network_size(h, w, short, max_size, divisor)
            if padded not in cache:
                cache[padded] = count_model_macs(model, *padded).gmacs
            stats.sizes.append(SizeCount(label, (h, w), resized, padded, cache[padded]))
    return stats
