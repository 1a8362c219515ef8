"""detectron2-style ResNet backbones (names match detectron2 checkpoints) with frozen batch norm.

``backbone.stem.conv1.{weight,norm.*}``, ``backbone.res2.0.{shortcut,conv1,conv2,conv3}.*`` ... as in
detectron2's ``build_resnet_backbone``: bottleneck blocks for R50/R101/R152 (stride in the 3x3 conv
when ``stride_in_1x1`` is False) and basic blocks for R18/R34.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BackboneConfig

__all__ = ["FrozenBatchNorm2d", "NormConv2d", "ResNet"]


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms, all stored as buffers (not parameters)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + bias.reshape(1, -1, 1, 1).to(x.dtype)


class NormConv2d(nn.Conv2d):
    """A conv with an attached ``norm`` submodule (detectron2's ``layers.Conv2d`` naming)."""

    def __init__(self, *args, norm: nn.Module | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return x


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> NormConv2d:
    return NormConv2d(cin, cout, k, stride=stride, padding=padding, bias=False, norm=FrozenBatchNorm2d(cout))


class BasicStem(nn.Module):
    """7x7/2 conv + frozen BN + ReLU + 3x3/2 max pool."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv_bn(in_channels, out_channels, 7, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.shortcut = _conv_bn(cin, cout, 1, stride=stride) if cin != cout else None
        self.conv1 = _conv_bn(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = _conv_bn(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        short = self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out + short)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck (ResNet-50/101/152)."""

    def __init__(self, cin: int, cout: int, bottleneck: int, stride: int = 1, stride_in_1x1: bool = False,
                 groups: int = 1) -> None:
        super().__init__()
        self.shortcut = _conv_bn(cin, cout, 1, stride=stride) if cin != cout else None
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv_bn(cin, bottleneck, 1, stride=s1)
        self.conv2 = NormConv2d(bottleneck, bottleneck, 3, stride=s3, padding=1, bias=False, groups=groups,
                                norm=FrozenBatchNorm2d(bottleneck))
        self.conv3 = _conv_bn(bottleneck, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        short = self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out + short)


_BLOCKS_PER_STAGE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


class ResNet(nn.Module):
    """Stem + stages ``res2``..``res5``; ``forward`` returns a dict of the requested stage outputs."""

    def __init__(self, cfg: BackboneConfig, in_channels: int = 3) -> None:
        super().__init__()
        depth = cfg.depth
        if depth not in _BLOCKS_PER_STAGE:
            raise ValueError(f"unsupported ResNet depth {depth}")
        self.stem = BasicStem(in_channels, cfg.stem_out_channels)
        self.out_features = tuple(cfg.out_features)
        self._out_channels: dict[str, int] = {}
        cin = cfg.stem_out_channels
        cout = cfg.res2_out_channels
        bottleneck = cfg.num_groups * cfg.width_per_group
        self.stage_names: list[str] = []
        for idx, n_blocks in enumerate(_BLOCKS_PER_STAGE[depth]):
            name = f"res{idx + 2}"
            blocks: list[nn.Module] = []
            for b in range(n_blocks):
                stride = 2 if idx > 0 and b == 0 else 1
                if depth >= 50:
                    blocks.append(BottleneckBlock(cin, cout, bottleneck, stride, cfg.stride_in_1x1, cfg.num_groups))
                else:
                    blocks.append(BasicBlock(cin, cout, stride))
                cin = cout
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self._out_channels[name] = cout
            cout *= 2
            bottleneck *= 2
        self.freeze(cfg.freeze_at)

    def output_channels(self) -> dict[str, int]:
        """Channels of each stage output."""
        return dict(self._out_channels)

    def freeze(self, freeze_at: int) -> None:
        """detectron2's FREEZE_AT: 1 freezes the stem, 2 the stem and res2, ..."""
        for idx, module in enumerate([self.stem, *(getattr(self, name) for name in self.stage_names)], start=1):
            if freeze_at >= idx:
                for p in module.parameters():
                    p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outputs[name] = x
        return outputs
