"""ImageNet initialization of both ResNet backbones (``backbone.*`` and ``backbonedepth.*``).

Accepted files (the user's own; nothing is downloaded):

- a torchvision ResNet state dict (e.g. torchvision's ``resnet50-0676ba61`` release file): ``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight`` ...
- a detectron2 ``.pkl`` made by detectron2's ``convert-torchvision-to-d2.py`` (the official configs'
  ``ImageNetPretrained/torchvision/R-50.pkl``): ``stem.conv1.weight``, ``res2.0.conv1.norm.weight`` ...
  as numpy arrays under key ``model``;
- a detectron2 MSRA/Caffe2 ``.pkl`` (``conv1_w``, ``res_conv1_bn_s``, ``res2_0_branch2a_w`` ...),
  converted with detectron2's renaming rules. Those networks were trained on BGR input without std
  normalization and with the stride in the 1x1 conv; CalibNet's configs use RGB + std and
  ``STRIDE_IN_1X1: False``, so a warning is printed;
- a checkpoint whose keys already start with ``backbone.``.

The torchvision -> detectron2 renaming is the rule of detectron2's converter: non-``layer`` keys get
a ``stem.`` prefix, ``layerN`` -> ``res{N+1}``, ``bnK`` -> ``convK.norm``, ``downsample.0`` ->
``shortcut``, ``downsample.1`` -> ``shortcut.norm``. As with detectron2's matching heuristics, the
same ImageNet weights initialize the RGB backbone and the depth backbone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import read_state_dict

__all__ = ["BackboneInitError", "backbone_state_from_file", "init_backbones", "torchvision_to_d2"]

BACKBONE_PREFIXES = ("backbone.", "backbonedepth.")


class BackboneInitError(ValueError):
    """The ImageNet weights do not fit the model's backbones."""


def torchvision_to_d2(key: str) -> str:
    """detectron2's name for a torchvision ResNet key (convert-torchvision-to-d2 rules)."""
    if "layer" not in key:
        key = "stem." + key
    for t in (1, 2, 3, 4):
        key = key.replace(f"layer{t}", f"res{t + 1}")
    for t in (1, 2, 3):
        key = key.replace(f"bn{t}", f"conv{t}.norm")
    key = key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
    return key


_C2_SUFFIX = {"_w": "weight", "_b": "bias", "_s": "weight", "_rm": "running_mean", "_riv": "running_var"}


def caffe2_to_d2(key: str) -> str | None:
    """detectron2's name for a Caffe2 (MSRA) ResNet key, None for keys without a backbone counterpart."""
    if key.startswith("fc1000") or key in ("pred_b", "pred_w"):
        return None
    m = re.fullmatch(r"(res_conv1_bn|conv1)(_w|_b|_s|_rm|_riv)", key)
    if m:
        base = "stem.conv1" if m.group(1) == "conv1" else "stem.conv1.norm"
        return f"{base}.{_C2_SUFFIX[m.group(2)]}"
    m = re.fullmatch(r"res(\d)_(\d+)_branch(1|2a|2b|2c)(_bn)?(_w|_b|_s|_rm|_riv)", key)
    if not m:
        return None
    stage, block, branch, bn, suffix = m.groups()
    conv = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}[branch]
    name = f"res{stage}.{block}.{conv}" + (".norm" if bn else "")
    return f"{name}.{_C2_SUFFIX[suffix]}"


def backbone_state_from_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The ResNet weights in ``path`` with detectron2 backbone names (``stem.*``, ``res2.*`` ...)."""
    sd = read_state_dict(path)
    keys = list(sd)
    if any(k.startswith(BACKBONE_PREFIXES) for k in keys):
        return {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    if any(k.startswith(("stem.", "res2.")) for k in keys):
        return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    if any(k.startswith("layer1.") for k in keys):
        return {torchvision_to_d2(k): v for k, v in sd.items()
                if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}
    if any(re.match(r"res\d_\d+_branch", k) for k in keys):
        print(f"warning: {path} is a Caffe2/MSRA ResNet (BGR input, no std normalization, stride in the "
              "1x1 conv); CalibNet's configs expect RGB + std and STRIDE_IN_1X1 False. Prefer a "
              "torchvision-converted file.", file=sys.stderr)
        return {name: v for k, v in sd.items() if (name := caffe2_to_d2(k)) is not None}
    raise BackboneInitError(f"{path}: not a ResNet state dict (expected torchvision 'layer1.*', detectron2 "
                            "'stem.*'/'res2.*', Caffe2 'res2_0_branch2a_w' or 'backbone.*' keys)")


def init_backbones(model: nn.Module, path: str | Path, quiet: bool = False) -> dict[str, int]:
    """Copy ImageNet weights from ``path`` into ``model.backbone`` and ``model.backbonedepth``.

    Transformer backbones (Swin, PVTv2, P2T) take their original releases' files:
    :func:`calibnet.training.transformer_init.init_transformer_backbones` (it reports what was loaded,
    renamed and left at init). For ResNets:

    Every tensor of both backbones must be found with the right shape (Caffe2 files, which lack
    batch-norm statistics, may miss ``running_mean``/``running_var``: those keep mean 0, var 1).
    Raises :class:`BackboneInitError` naming missing and wrong-shape keys (e.g. an R50 file for an
    R18 config). Returns counts of loaded tensors per backbone.
    """
    from ..modeling.backbones import is_transformer_backbone

    if is_transformer_backbone(model.cfg):  # Swin / PVTv2 / P2T release files
        from .transformer_init import init_transformer_backbones

        return init_transformer_backbones(model, path, quiet=quiet).counts()
    weights = backbone_state_from_file(path)
    backbones = {attr: getattr(model, attr) for attr in ("backbone", "backbonedepth")}
    own = backbones["backbone"].state_dict()  # backbonedepth is built the same way: the same keys and shapes
    missing, wrong = [], []
    new_state = {}
    for k, t in own.items():
        if k not in weights:
            if k.endswith(("running_mean", "running_var")) and k.replace(k.rsplit(".", 1)[1], "weight") in weights:
                new_state[k] = torch.zeros_like(t) if k.endswith("mean") else torch.ones_like(t)
                continue
            missing.append(k)
        elif tuple(weights[k].shape) != tuple(t.shape):
            wrong.append(f"{k} (file {list(weights[k].shape)} vs model {list(t.shape)})")
        else:
            new_state[k] = weights[k].to(t.dtype)
    if missing or wrong:
        parts = [f"{path} does not fit backbone ({len(own)} tensors):"]
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if wrong:
            parts.append(f"wrong shape {len(wrong)}: {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}")
        parts.append("(is the file's ResNet depth the config's MODEL.RESNETS.DEPTH?)")
        raise BackboneInitError(" ".join(parts))
    for module in backbones.values():
        module.load_state_dict(new_state, strict=True)
    counts = {attr: len(new_state) for attr in backbones}
    if not quiet:
        print(f"initialized backbone and backbonedepth from {path} ({counts['backbone']} tensors each)",
              file=sys.stderr)
    return counts
