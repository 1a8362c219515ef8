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

from .flops import MacCount, count_model_macs

__all__ = ["PAPER", "DATASET_FRAMES", "SizeCount", "ModelStats", "model_stats", "padded_network_size"]

#: The paper's efficiency figures (CalibNet R50, IEEE TIP 2024) and where they were measured.
PAPER: dict[str, Any] = {
    "params_m": 78.9,
    "gflops": 90.2,
    "fps": 35.9,
    "fps_device": "NVIDIA RTX 3090 (GPU), 320x480 input",
    "gflops_convention": "fvcore (1 multiply-add = 1 flop), mean over test images",
    "params_convention": "model.parameters() of the training model, aux heads included",
}

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
    from calibnet.runtime.resize import shortest_edge_size

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

    def explain_paper_gflops(self) -> list[str]:
        """Sentences relating the paper's 90.2G to the counts here."""
        main = self.macs.gmacs
        lines = [f"fvcore-convention count at {self.network_hw[0]}x{self.network_hw[1]}: {main:.2f} GMACs "
                 f"(= {2 * main:.1f} GFLOPs when a multiply and an add count separately); paper: "
                 f"{PAPER['gflops']} G (fvcore convention, mean over test images)."]
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
    stats = ModelStats(params.total, params.without_aux, dict(params.by_module), macs, (height, width))
    if dataset_sizes:
        cfg: Any = model.cfg
        short, max_size = cfg.input.min_size_test, cfg.input.max_size_test
        divisor = cfg.input.size_divisibility
        stats.paper_model = (cfg.backbone.depth == 50 and (short, max_size) == (320, 480)
                             and cfg.decoder.num_kernels == 50)
        cache: dict[tuple[int, int], float] = {(height, width): macs.gmacs}
        for label, h, w in DATASET_FRAMES:
            resized, padded = padded_network_size(h, w, short, max_size, divisor)
            if padded not in cache:
                cache[padded] = count_model_macs(model, *padded).gmacs
            stats.sizes.append(SizeCount(label, (h, w), resized, padded, cache[padded]))
    return stats
