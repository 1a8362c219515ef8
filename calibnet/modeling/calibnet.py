"""The CalibNet meta-architecture with the deployment forward contract.

``model(rgb, depth, image_sizes=None)``: ``rgb`` float [B,3,H,W] in 0..255 (RGB order), ``depth``
float [B,1,H,W] in 0..255, H and W multiples of 32. Normalization happens inside: the depth map is
repeated to 3 channels and normalized with the RGB mean/std, as the official data path reads an
8-bit depth PNG as a gray RGB image. ``image_sizes`` marks the valid top-left (h, w) of each padded
image; outside it the normalized input is zero, exactly as the official code pads after normalizing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import CalibNetConfig
from .backbones import build_backbones
from .encoder import TransformerEncoder
from .kernel_branch import CalibNetDecoder
from .mask_branch import build_mask_branch

__all__ = ["CalibNet", "TRAINING_ONLY_MODULES"]

#: (h, w) of the valid region of each image: a list of pairs or an int tensor [B, 2].
ImageSizes = Sequence[Sequence[int]] | torch.Tensor

#: Top-level modules used only for training (auxiliary coarse saliency heads).
TRAINING_ONLY_MODULES = ("predictor_rgb", "predictor_depth", "predictor_rgb_r2", "predictor_depth_d2")


class CoarsePredictor(nn.Module):
    """A training-only coarse saliency predictor (``predictor_rgb``, ``predictor_depth``, ...): 3x3 conv +
    GroupNorm + GELU + 1x1 conv -> one saliency logit map."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = nn.Conv2d(in_channels, mid, 3, padding=1)
        self.norm = nn.GroupNorm(32, mid)
        self.activation = nn.GELU()
        self.conv2 = nn.Conv2d(mid, 1, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.constant_(conv.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.activation(self.norm(self.conv1(x))))


class CalibNet(nn.Module):
    """CalibNet (IEEE TIP 2024), module and parameter names as in the official checkpoints."""

    def __init__(self, cfg: CalibNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or CalibNetConfig()
        cfg.validate()
        self.cfg = cfg
        self.size_divisibility = cfg.input.size_divisibility
        self.backbone, self.backbonedepth = build_backbones(cfg)
        channels = self.backbone.output_channels()
        self.encoder = TransformerEncoder(cfg.encoder, channels)
        self.encoder_depth = TransformerEncoder(cfg.encoder_depth, channels)
        self.decoder = CalibNetDecoder(cfg.decoder, cfg.fusion_decoder.mask_dim, cfg.num_classes)
        self.fusion_decoder = build_mask_branch(cfg.fusion_decoder)
        feat_dim = cfg.decoder.input_channels
        self.predictor_rgb = CoarsePredictor(feat_dim)
        self.predictor_depth = CoarsePredictor(feat_dim)
        self.predictor_rgb_r2 = CoarsePredictor(feat_dim)
        self.predictor_depth_d2 = CoarsePredictor(feat_dim)
        for name in ("pixel_mean", "pixel_std"):  # not in the state dict, as in the official model
            self.register_buffer(name, torch.tensor(getattr(cfg, name), dtype=torch.float32).view(1, 3, 1, 1),
                                 persistent=False)

    # ------------------------------------------------------------------ inputs
    def normalize(
        self, rgb: torch.Tensor, depth: torch.Tensor, image_sizes: ImageSizes | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalize both inputs and zero everything outside each image's valid region."""
        if depth.shape[1] == 1:
            depth = depth.expand(-1, 3, -1, -1)
        rgb = (rgb - self.pixel_mean) / self.pixel_std
        depth = (depth - self.pixel_mean) / self.pixel_std
        if image_sizes is not None:
            valid = valid_region_mask(image_sizes, rgb.shape[-2], rgb.shape[-1], rgb.device)
            if valid.shape[0] != rgb.shape[0]:
                raise ValueError(f"image_sizes has {valid.shape[0]} entries for a batch of {rgb.shape[0]}")
            rgb = rgb * valid
            depth = depth * valid
        return rgb, depth

    def check_inputs(self, rgb: torch.Tensor, depth: torch.Tensor) -> None:
        """Raise ValueError for shapes the network cannot take."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be [B,3,H,W], got {tuple(rgb.shape)}")
        if depth.dim() != 4 or depth.shape[1] not in (1, 3):
            raise ValueError(f"depth must be [B,1,H,W], got {tuple(depth.shape)}")
        if depth.shape[0] != rgb.shape[0] or depth.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(f"rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} differ in batch or size")
        H, W = rgb.shape[-2:]
        d = self.size_divisibility
        if H % d or W % d:
            raise ValueError(f"H and W must be multiples of {d} (pad bottom/right and pass image_sizes), got {H}x{W}")
        if not rgb.is_floating_point() or not depth.is_floating_point():
            raise ValueError("rgb and depth must be float tensors in 0..255")

    # ------------------------------------------------------------------ forward
    def features(self, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encoder outputs [T5, T4, T3, R2] of each modality from normalized inputs."""
        feats = self.encoder(self.backbone(rgb))
        feats_d = self.encoder_depth(self.backbonedepth(depth))
        return feats, feats_d

    def forward(
        self, rgb: torch.Tensor, depth: torch.Tensor, image_sizes: ImageSizes | None = None
    ) -> dict[str, torch.Tensor]:
        """Raw outputs: ``pred_logits`` [B,N,1], ``pred_scores`` (objectness logits) [B,N,1],
        ``pred_masks`` (mask logits) [B,N,H/2,W/2], ``pred_kernels`` [B,N,D], and the DSA
        depth-trust scores ``dsa_kernel``, ``dsa_t3``, ``dsa_r2`` [B] (``depth_trust`` [B,3] stacks them).
        In training mode the auxiliary coarse saliency logits are added (``aux_*``).
        """
        self.check_inputs(rgb, depth)
        rgb_n, depth_n = self.normalize(rgb, depth, image_sizes)
        feats, feats_d = self.features(rgb_n, depth_n)
        mask_features, dsa_mask = self.fusion_decoder(feats, feats_d)
        out = self.decoder(feats[2], feats_d[2], mask_features)
        out["dsa_t3"] = dsa_mask[0]
        if len(dsa_mask) > 1:
            out["dsa_r2"] = dsa_mask[1]
        out["depth_trust"] = torch.stack([out["dsa_kernel"], *dsa_mask], dim=1)
        if self.training:
            out["aux_rgb_t3"] = self.predictor_rgb(feats[2])
            out["aux_depth_t3"] = self.predictor_depth(feats_d[2])
            out["aux_rgb_r2"] = self.predictor_rgb_r2(feats[3])
            out["aux_depth_r2"] = self.predictor_depth_d2(feats_d[3])
        return out


def valid_region_mask(image_sizes: ImageSizes, H: int, W: int,
                      device: torch.device) -> torch.Tensor:
    """[B,1,H,W] float mask, 1 inside each image's valid top-left (h, w) region."""
    sizes = torch.as_tensor(image_sizes, device=device)
    if sizes.dim() != 2 or sizes.shape[1] != 2:
        raise ValueError(f"image_sizes must be [B,2] (h, w), got shape {tuple(sizes.shape)}")
    rows = torch.arange(H, device=device)[None, :, None]
    cols = torch.arange(W, device=device)[None, None, :]
    mask = (rows < sizes[:, 0, None, None]) & (cols < sizes[:, 1, None, None])
    return mask[:, None].to(torch.float32)
