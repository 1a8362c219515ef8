"""ImageNet initialization of the transformer backbones (Swin-T, PVTv2, P2T) from the original releases.

Accepted files (the user's own; nothing is downloaded), loaded into ``backbone`` AND ``backbonedepth``
(as detectron2's name matching does for the official training):

- microsoft/Swin-Transformer classification checkpoints, e.g. ``swin_tiny_patch4_window7_224_22k.pth``:
  ``{"model": state_dict}`` with ``patch_embed.*``, ``layers.<i>.blocks.<j>.*``, ``layers.<i>.downsample.*``,
  a final ``norm.*`` and the classifier ``head.*``. The names are those of calibnet's Swin; the classifier's
  final ``norm`` (768) and ``head``, and the ``attn_mask`` buffers of the 224-pixel model, have no
  counterpart: the per-stage output norms ``norm0`` .. ``norm3`` of the dense-prediction backbone stay at
  their initialization (weight 1, bias 0), as in the official detection code.
- whai362/PVT ``pvt_v2_b2_li.pth``: a bare state dict with calibnet's PVTv2 names; ``head.*`` is unused.
- yuhuan-wu/P2T ``p2t_large.pth``: a bare state dict (or ``{"model": ...}``) with calibnet's P2T names;
  the classifier ``head`` is loaded too (the official CalibNet keeps it), a final ``norm.*`` is unused.
- the same weights with a ``backbone.`` prefix (mmdetection / detectron2-converted files, or a CalibNet
  checkpoint): the prefix is removed (reported as renamed).

A wrong-shape tensor (another window size, another variant) is an error naming the keys; a file that
matches nothing is an error. :class:`BackboneInitReport` lists what was loaded, renamed, left at init
and what the file had that the backbone does not use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import first_items, read_state_dict

__all__ = ["BackboneInitReport", "TransformerInitError", "init_transformer_backbones"]

_PREFIXES = ("backbone.", "module.backbone.")


class TransformerInitError(ValueError):
    """The ImageNet weights do not fit the model's transformer backbones."""


@dataclass
class BackboneInitReport:
    """What :func:`init_transformer_backbones` did to each of the two backbones (the same for both)."""

    path: str
    loaded: list[str] = field(default_factory=list)  # backbone keys copied from the file
    renamed: dict[str, str] = field(default_factory=dict)  # file key -> backbone key, where they differ
    left_at_init: list[str] = field(default_factory=list)  # backbone keys the file does not have
    unused: list[str] = field(default_factory=list)  # file keys without a backbone counterpart

    def counts(self) -> dict[str, int]:
        """Tensors loaded per backbone (``backbone``, ``backbonedepth``) and the other counts."""
        n = len(self.loaded)
        return {"backbone": n, "backbonedepth": n, "renamed": len(self.renamed),
                "left_at_init": len(self.left_at_init), "unused": len(self.unused)}

    def summary(self, limit: int = 8) -> str:
        """A few human-readable lines."""
        total = len(self.loaded) + len(self.left_at_init)
        lines = [f"initialized backbone and backbonedepth from {self.path}: loaded {len(self.loaded)} of {total} "
                 f"tensors each, renamed {len(self.renamed)}"]
        if self.renamed:
            first = next(iter(self.renamed.items()))
            lines.append(f"  renamed (e.g. {first[0]} -> {first[1]})")
        if self.left_at_init:
            lines.append(f"  left at init ({len(self.left_at_init)}): {first_items(self.left_at_init, limit)}")
        if self.unused:
            lines.append(f"  unused in the file ({len(self.unused)}): {first_items(self.unused, limit)}")
        return "\n".join(lines)


def _backbone_names(sd: dict[str, torch.Tensor]) -> dict[str, tuple[str, torch.Tensor]]:
    """backbone key -> (file key, tensor): a ``backbone.`` prefix is removed when the file has one (then the
    ``backbonedepth.`` half of a CalibNet checkpoint is ignored)."""
    if not any(k.startswith(_PREFIXES) for k in sd):
        return {k: (k, v) for k, v in sd.items()}
    prefix_of = {k: next((p for p in _PREFIXES if k.startswith(p)), None) for k in sd}
    return {k[len(p):]: (k, sd[k]) for k, p in prefix_of.items() if p is not None}


def init_transformer_backbones(model: nn.Module, path: str | Path, quiet: bool = False) -> BackboneInitReport:
    """Copy the ImageNet weights of a Swin / PVTv2 / P2T release file into both backbones of ``model``.

    Raises :class:`TransformerInitError` when a tensor has the wrong shape or nothing matches; prints
    :meth:`BackboneInitReport.summary` to stderr unless ``quiet``.
    """
    path = Path(path)
    sd = read_state_dict(path)
    by_name = _backbone_names(sd)
    own = model.backbone.state_dict()
    report = BackboneInitReport(str(path))
    wrong = []
    new_state = {}
    for k, t in own.items():
        if k not in by_name:
            report.left_at_init.append(k)
            continue
        file_key, v = by_name[k]
        if tuple(v.shape) != tuple(t.shape):
            wrong.append(f"{file_key} (file {list(v.shape)} vs model {list(t.shape)})")
            continue
        new_state[k] = v.to(t.dtype)
        report.loaded.append(k)
        if file_key != k:
            report.renamed[file_key] = k
    used = {by_name[k][0] for k in own if k in by_name}
    report.unused = [k for k in sd if k not in used and not k.startswith("backbonedepth.")]
    if wrong:
        raise TransformerInitError(f"{path} does not fit the {model.cfg.backbone.name} backbone: wrong shape "
                                   f"{len(wrong)}: {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''} "
                                   "(another variant or window size?)")
    if not report.loaded:
        raise TransformerInitError(f"{path}: no tensor matches the {model.cfg.backbone.name} backbone (first "
                                   f"file keys: {', '.join(list(sd)[:5])})")
    for attr in ("backbone", "backbonedepth"):
        getattr(model, attr).load_state_dict(new_state, strict=False)
    if not quiet:
        print(report.summary(), file=sys.stderr)
    return report
