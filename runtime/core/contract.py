"""The graph contract between export, engines and runtime (no torch): the one owner of the graph's
input/output names, the TensorRT plugin name, :class:`ModelMetadata`, config -> metadata and the metadata of
an ONNX file (other file kinds: :mod:`calibnet.runtime.core.targets`).

An exported ONNX file carries the metadata fields in ``metadata_props`` (key ``calibnet.<field>``, value a
JSON string); an engine carries them in its JSON sidecar under ``"model"``. The runtime reads nothing
else: never the training config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .onnx_props import read_metadata_props

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "TOPK_OUTPUT_NAMES", "MASK_OUTPUTS", "PLUGIN_NAME", "PLUGIN_DOMAIN",
           "ModelMetadata", "metadata_from_config", "read_onnx_metadata", "set_onnx_metadata", "PREFIX",
           "FORMAT_VERSION"]

#: graph inputs: rgb float32 [B,3,H,W] 0..255, depth float32 [B,1,H,W] 0..255, valid_hw int64 [B,2]
INPUT_NAMES: tuple[str, str, str] = ("rgb", "depth", "valid_hw")
#: full-output graph: class logits [B,N,1], objectness logits [B,N,1], mask logits [B,N,H/2,W/2], DSA scores [B,3]
OUTPUT_NAMES: tuple[str, ...] = ("pred_logits", "pred_scores", "pred_masks", "depth_trust")
#: in-graph top-k graph: scores [B,K] (-1 below threshold), mask probabilities [B,K,H/2,W/2], DSA, kernel indices
TOPK_OUTPUT_NAMES: tuple[str, ...] = ("scores", "masks", "depth_trust", "keep_index")
#: mask outputs and what they hold: ``pred_masks`` logits, ``masks`` probabilities
MASK_OUTPUTS: dict[str, str] = {"pred_masks": "logits", "masks": "probabilities"}
#: the TensorRT multi-scale deformable-attention plugin (op_type of the custom node) and the node domain
PLUGIN_NAME = "MultiscaleDeformableAttnPlugin_TRT"
PLUGIN_DOMAIN = "TRT"

PREFIX = "calibnet."
FORMAT_VERSION = 1


@dataclass
class ModelMetadata:
    """Everything a backend needs to feed the graph and decode its outputs."""

    # graph flavour and shapes
    flavor: str = "portable"  # "portable" (plain ONNX) | "tensorrt" (MSDA plugin node)
    topk: int = 0  # 0: full outputs (pred_logits/pred_scores/pred_masks); K: in-graph selection
    height: int = 320  # static (or optimal) network input height
    width: int = 480
    batch: int = 1
    dynamic_batch: bool = False
    dynamic_hw: bool = False
    min_hw: tuple[int, int] = (320, 320)  # profile bounds for dynamic H/W (multiples of size_divisibility)
    max_hw: tuple[int, int] = (480, 480)
    max_batch: int = 1
    # input convention
    input_names: tuple[str, ...] = INPUT_NAMES
    output_names: tuple[str, ...] = OUTPUT_NAMES
    input_layout: str = "rgb float32 [B,3,H,W] 0..255 RGB; depth float32 [B,1,H,W] 0..255; valid_hw int64 [B,2]"
    normalized_in_graph: bool = True
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisibility: int = 32
    # 8-bit depth convention of the training data: "near-dark" (COME15K, SIP: the official checkpoints) or
    # "near-bright"; the runtime converts metric depth / disparity to it (calibnet.runtime.core.depth)
    depth_direction: str = "near-dark"
    mask_stride: int = 2  # masks are at 1/mask_stride of the network input
    resize_short: int = 320  # ResizeShortestEdge of the official test pipeline
    resize_max: int = 480
    # model and post-processing
    num_kernels: int = 50
    cls_threshold: float = 0.005
    mask_threshold: float = 0.45
    max_detections: int = 50
    # provenance
    config: str = "r50"
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    deterministic_weights: bool = False
    opset: int = 17
    exporter: str = ""
    torch_version: str = ""
    calibnet_version: str = ""
    precision: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_props(self) -> dict[str, str]:
        """``{"calibnet.<field>": json}`` for ONNX ``metadata_props``."""
        return {PREFIX + k: json.dumps(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse ``metadata_props``; unknown fields are kept in ``extra``; a file without calibnet
        metadata raises ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, raw in props.items():
            if key.startswith(PREFIX):
                name = key[len(PREFIX):]
                with contextlib.suppress(json.JSONDecodeError):
                    raw = json.loads(raw)
                (values if name in names else extra)[name] = raw
        if not values:
            raise ValueError("no calibnet metadata found (was this file written by calibnet-export?)")
        return cls.from_dict({**values, "extra": {**values.get("extra", {}), **extra}})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict (for engine sidecars)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetadata:
        """Inverse of :meth:`to_dict` (lists become tuples)."""
        kwargs: dict[str, Any] = {f.name: tuple(d[f.name]) if isinstance(d[f.name], list) else d[f.name]
                                  for f in dataclasses.fields(cls) if f.name in d}
        return cls(**kwargs)


def metadata_from_config(cfg: Any, base: ModelMetadata | None = None, **facts: Any) -> ModelMetadata:
    """The metadata a CalibNet config implies (normalization, sizes, kernels, thresholds), over ``base``
    (e.g. provenance fields), with ``facts`` (the exporter's or backend's: flavour, shapes, versions...)
    set last. ``cfg`` is read by attribute only, so this needs no torch."""
    meta = ModelMetadata.from_dict(base.to_dict()) if base is not None else ModelMetadata()
    values = dict(pixel_mean=tuple(cfg.pixel_mean), pixel_std=tuple(cfg.pixel_std),
                  size_divisibility=cfg.input.size_divisibility, resize_short=cfg.input.min_size_test,
                  resize_max=cfg.input.max_size_test, num_kernels=cfg.decoder.num_kernels,
                  cls_threshold=cfg.inference.cls_threshold, mask_threshold=cfg.inference.mask_threshold,
                  max_detections=cfg.inference.max_detections, **facts)
    return dataclasses.replace(meta, **values)


def read_onnx_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The metadata of an exported ONNX file (its ``metadata_props``), read without the onnx package or a
    session; ``ValueError`` naming the file when it carries none."""
    try:
        return ModelMetadata.from_props(read_metadata_props(path))
    except ValueError as exc:
        raise ValueError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None


def set_onnx_metadata(proto: Any, metadata: ModelMetadata) -> None:
    """Store ``metadata`` in an ``onnx.ModelProto``'s ``metadata_props`` (replacing calibnet's earlier entries)."""
    kept = [p for p in proto.metadata_props if not p.key.startswith(PREFIX)]
    del proto.metadata_props[:]
    for key, value in [*((p.key, p.value) for p in kept), *metadata.to_props().items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
