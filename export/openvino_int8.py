"""INT8 post-training quantization of an exported CalibNet model for OpenVINO (NNCF), guarded by the comparator.

``quantize_int8(onnx, "m_int8.xml", frames)``: NNCF's PTQ (min-max statistics on calibration frames, fast bias
correction) over the FP32 graph with the groups of :data:`KEEP_FLOAT_GROUPS` named in ``keep_float`` left out
of quantization (NNCF ``IgnoredScope``), then the INT8 model, compiled exactly as the OpenVINO backend compiles it
(its float parts in BF16 where the CPU reports native BF16, else FP32: what runs), is compared with the FP32 model
on held-out frames by :func:`calibnet.runtime.core.compare.compare_outputs` (``precision="int8"``). Below the
threshold it is refused (:class:`QuantizationRefused`, whose message names the groups still quantized that can be
kept in float) unless ``force=True``, which writes it marked ``forced`` in its metadata.

The written IR carries calibnet's metadata in ``rt_info`` (``precision="int8"`` and ``extra["int8"]``: the
groups kept in float and their NNCF scope, the calibration frames, the comparison report and the precision its
float parts ran at (``float_precision``), ``msda`` (fused or decomposed), versions, ``forced``); see
:mod:`calibnet.runtime.backends.openvino`. A TensorRT-flavoured ONNX is read as the backend reads it: with the
fused MSDA kernel built, the IR keeps its fused nodes (and then needs the kernel to run).

Calibration frames are read and pre-processed by the runtime's own code: RGB/depth pairs of a folder
(:func:`calibnet.runtime.apps.sources.match_pairs`, the runtime's readers and ``Runtime.prepare``), or synthetic
scenes (:func:`calibnet.data.synthetic.make_scene`). No torch is needed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibnet.data.synthetic import make_scene
from calibnet.runtime import Runtime
from calibnet.runtime.apps.sources import image_frames, match_pairs
from calibnet.runtime.backends import signal_stack
from calibnet.runtime.backends.base import BackendUnavailable
from calibnet.runtime.backends.openvino import OpenVinoBackend, write_ir_metadata
from calibnet.runtime.backends.openvino_msda import read_model
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.contract import ModelMetadata
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.feeds import stack_frames
from calibnet.runtime.core.targets import install_hint

__all__ = ["KEEP_FLOAT_GROUPS", "DEFAULT_KEEP_FLOAT", "QuantizationRefused", "Int8Result", "Int8Options",
           "quantize_int8", "make_int8_ir", "check_bf16", "ignored_scope_spec", "synthetic_calibration_feeds",
           "folder_calibration_feeds", "compare_precision", "parse_keep_float"]

#: parts of the CalibNet graph that can be kept out of INT8 quantization, as NNCF ignored-scope entries over
#: OpenVINO node names (which follow the PyTorch module path of the ONNX export) and OpenVINO op types
KEEP_FLOAT_GROUPS: dict[str, dict[str, Any]] = {
    "msda": {"patterns": [r".*/self_attn/.*"],
             "what": "multi-scale deformable attention: value/offset/weight/output projections, sampling "
                     "arithmetic, GridSample"},
    "softmax_layernorm": {"types": ["Softmax", "MVN"],
                          "what": "softmax and the normalizations (LayerNorm, GroupNorm: OpenVINO MVN)"},
    "encoder_ffn": {"patterns": [r".*/trans_encoder/.*/linear[12]/.*"],
                    "what": "the transformer encoders' feed-forward layers"},
    "kernel_branch": {"patterns": [r".*/model/decoder/.*"],
                      "what": "the kernel branch (DSA, instance-aware kernels, scores, objectness, mask product)"},
    "mask_branch": {"patterns": [r".*/fusion_decoder/.*"], "what": "the mask branch (WSF modules, projection)"},
}
#: the split this module uses unless told otherwise: only the backbones (and the encoders' input projections) in
#: INT8, the smallest split whose masks agree with the official FP32 outputs on >= 99% of the pixels of ref_A and
#: ref_B with its float parts in BF16 (measured: docs/openvino.md, "INT8: what stays in float")
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("msda", "softmax_layernorm", "encoder_ffn", "kernel_branch", "mask_branch")


class QuantizationRefused(RuntimeError):
    """The INT8 model disagrees with FP32 beyond the comparator's limits; the message says what to keep in float."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Int8Result:
    """What :func:`quantize_int8` wrote and measured."""

    path: Path
    keep_float: tuple[str, ...]
    report: Any  # calibnet.runtime.core.compare.ComparisonReport
    forced: bool
    calibration: dict[str, Any]
    seconds: float

    @property
    def passed(self) -> bool:
        """Whether the INT8 model passed the comparison with FP32."""
        return bool(self.report.passed)


def parse_keep_float(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """Group names from ``"msda,kernel_branch"`` (``"none"`` or empty: nothing kept in float); unknown names are
    a ``ValueError`` listing the groups."""
    if text is None:
        return DEFAULT_KEEP_FLOAT
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if items in (["none"], []):
        return ()
    unknown = [t for t in items if t not in KEEP_FLOAT_GROUPS]
    if unknown:
        raise ValueError(f"unknown keep-float group(s) {', '.join(unknown)}: choose from "
                         f"{', '.join(KEEP_FLOAT_GROUPS)} (or none)")
    return tuple(dict.fromkeys(items))


def ignored_scope_spec(keep_float: Sequence[str]) -> dict[str, list[str]]:
    """``{"patterns": [...], "types": [...]}`` of NNCF's IgnoredScope for these groups."""
    return {kind: list(dict.fromkeys(entry for name in keep_float for entry in KEEP_FLOAT_GROUPS[name].get(kind, ())))
            for kind in ("patterns", "types")}


def _static_batch(metadata: ModelMetadata) -> int:
    return max(1, int(metadata.batch)) if not metadata.dynamic_batch else 1


def synthetic_calibration_feeds(runtime: Any, count: int, seed: int = 1000) -> list[dict[str, np.ndarray]]:
    """Graph feeds of ``count`` synthetic RGB-D scenes (seeds ``seed``..), resized and padded by
    ``runtime.prepare`` (scenes 1.5x the network size, as calibnet-bench's frame)."""
    m = runtime.metadata
    h, w = round(m.height * 1.5), round(m.width * 1.5)
    scenes = (make_scene(seed=seed + i, height=h, width=w) for i in range(count))
    return [stack_frames([runtime.prepare(s.rgb, s.depth)] * _static_batch(m)) for s in scenes]


def folder_calibration_feeds(runtime: Any, folder: str | Path, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """Graph feeds of the RGB/depth pairs of ``folder`` (``RGB/`` + ``depth/`` beside each other, pairs by file
    stem; or ``folder`` itself holding ``rgb``/``depth`` subfolders of another case), read by the runtime's
    readers and pre-processed by ``runtime.prepare``."""
    folder = Path(folder)
    subs = {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}
    if "rgb" not in subs or "depth" not in subs:
        raise InputError(f"calibration folder {folder}: expected RGB/ and depth/ subfolders (pairs by file stem)")
    pairs = match_pairs(subs["rgb"], subs["depth"])[: limit or None]
    batch = _static_batch(runtime.metadata)
    return [stack_frames([runtime.prepare(f.rgb, f.depth)] * batch) for f in image_frames(pairs)]


def compare_precision(reference: Any, candidate: Any, feeds: Sequence[dict[str, np.ndarray]], metadata: ModelMetadata,
                      precision: str, min_mask_agreement: float | None = None) -> Any:
    """One comparator report over several frames: the outputs of ``reference`` and ``candidate`` (backends) on
    each feed, concatenated along the batch axis, compared by :func:`calibnet.runtime.core.compare.compare_outputs`."""
    refs = [reference.run(f) for f in feeds]
    cands = [candidate.run(f) for f in feeds]
    ref = {k: np.concatenate([r[k] for r in refs]) for k in refs[0]}
    cand = {k: np.concatenate([c[k] for c in cands]) for k in refs[0] if k in cands[0]}
    return compare_outputs(ref, cand, metadata, precision=precision, min_mask_agreement=min_mask_agreement)


#: the groups that compute each output, most likely cause first: where to look when that output disagrees
_OUTPUT_GROUPS: dict[str, tuple[str, ...]] = {
    "pred_masks": ("mask_branch", "kernel_branch", "msda", "softmax_layernorm", "encoder_ffn"),
    "depth_trust": ("mask_branch", "kernel_branch"),  # the DSA scores of the kernel branch and the two WSF modules
    "pred_logits": ("kernel_branch", "msda", "softmax_layernorm", "encoder_ffn"),
    "pred_scores": ("kernel_branch", "msda", "softmax_layernorm", "encoder_ffn"),
}


def _refusal(report: Any, keep_float: Sequence[str]) -> str:
    failing = [c for c in report.checks() if not c.passed]
    failed = [f"{c.name} {c.metric} {c.value:.4g} (limit {c.limit:.4g})" for c in failing]
    rest = [g for g in KEEP_FLOAT_GROUPS if g not in keep_float]
    suspects = [g for c in failing for g in _OUTPUT_GROUPS.get(c.name, ()) if g in rest]
    nxt = (suspects or rest)[:1]
    hint = (f"keep more in float: --int8-keep-float {','.join([*keep_float, *nxt])} (groups still quantized: "
            f"{', '.join(rest)})" if rest else "every group is already kept in float: use more/better calibration "
            "frames or stay with bf16/f32")
    return (f"the INT8 model disagrees with FP32 ({'; '.join(failed)}); kept in float: "
            f"{', '.join(keep_float) or 'nothing'}. Not written: {hint}, or pass --force to write it anyway "
            "(marked forced in its metadata)")


def quantize_int8(model_path: str | Path, out_xml: str | Path, calibration: Sequence[dict[str, np.ndarray]],
                  check_feeds: Sequence[dict[str, np.ndarray]] | None = None,
                  keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT, preset: str = "mixed", transformer: bool = False,
                  force: bool = False, min_mask_agreement: float | None = None, threads: int = 0,
                  calibration_source: str = "") -> Int8Result:
    """Quantize the FP32 model at ``model_path`` (ONNX or IR) to an INT8 OpenVINO IR at ``out_xml``.

    ``calibration``: graph feeds (see :func:`synthetic_calibration_feeds`); ``check_feeds``: frames for the
    comparison with FP32 (default: the calibration frames); ``keep_float``: groups of
    :data:`KEEP_FLOAT_GROUPS`; ``preset``: NNCF ``mixed`` (symmetric weights, asymmetric activations) or
    ``performance``; ``transformer``: NNCF ``model_type=TRANSFORMER``. Raises :class:`QuantizationRefused`
    (nothing written) when the comparison fails and ``force`` is false."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    if not calibration:
        raise ValueError("no calibration frames")
    keep_float = tuple(keep_float)
    t0 = time.perf_counter()
    out_xml = Path(out_xml)
    reference = OpenVinoBackend(model_path, precision="f32", threads=threads, cache_dir="")
    metadata = reference.metadata
    # read as the backend reads it: a TensorRT-flavoured graph keeps its fused MSDA nodes when the kernel is built
    model, route = read_model(ov.Core(), Path(model_path), metadata)
    scope = ignored_scope_spec(keep_float)
    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    if preset not in presets:
        raise ValueError(f"unknown NNCF preset {preset!r}: mixed or performance")
    with signal_stack.guard():  # NNCF's statistics engines make (and drop) Cores of their own
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration)), preset=presets[preset],
                                  subset_size=len(calibration), fast_bias_correction=True,
                                  model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                                  ignored_scope=nncf.IgnoredScope(patterns=scope["patterns"], types=scope["types"],
                                                                  validate=False))
    info: dict[str, Any] = {
        "keep_float": list(keep_float), "ignored_scope": scope,
        "kept_in_float": {g: KEEP_FLOAT_GROUPS[g]["what"] for g in keep_float},
        "calibration": {"frames": len(calibration), "source": calibration_source, "preset": preset,
                        "model_type": "transformer" if transformer else "default", "fast_bias_correction": True},
        "msda": route.mode, "openvino": ov.__version__.split("-")[0], "nncf": nncf.__version__}
    meta = ModelMetadata.from_dict(metadata.to_dict())
    meta.precision = "int8"
    out_xml.parent.mkdir(parents=True, exist_ok=True)

    def save(extra: dict[str, Any]) -> None:
        meta.extra = {**metadata.extra, "int8": {**info, **extra}}
        write_ir_metadata(quantized, meta)
        ov.save_model(quantized, str(out_xml), compress_to_fp16=False)

    save({"comparison": None, "forced": False})  # provisional: the comparison runs the written IR
    try:  # as the backend compiles it (its float parts in BF16 where the CPU has native BF16): what runs
        candidate = OpenVinoBackend(out_xml, precision="int8", threads=threads, cache_dir="")
        report = compare_precision(reference, candidate, check_feeds or calibration, metadata, "int8",
                                   min_mask_agreement)
        candidate.close()
    except BaseException:
        _remove_ir(out_xml)
        raise
    finally:
        reference.close()
    if not report.passed and not force:
        _remove_ir(out_xml)
        raise QuantizationRefused(_refusal(report, keep_float), report)
    forced = bool(force and not report.passed)
    save({"comparison": report.to_json(), "forced": forced, "float_precision": candidate.float_precision})
    return Int8Result(out_xml, keep_float, report, forced, info["calibration"], time.perf_counter() - t0)


def _remove_ir(xml: Path) -> None:
    for p in (xml, xml.with_suffix(".bin")):
        p.unlink(missing_ok=True)


@dataclass(frozen=True)
class Int8Options:
    """How :func:`make_int8_ir` calibrates and checks: RGB-D pairs of ``calib_dir`` (``RGB/`` + ``depth/``, at most
    ``calib_limit``) or ``calib_synthetic`` synthetic scenes (default 16), the groups kept in float, the NNCF preset
    and model type, ``check_frames`` held-out frames for the comparison with FP32, ``force`` (write it even when
    the comparison fails)."""

    calib_dir: str | None = None
    calib_synthetic: int | None = None
    calib_limit: int = 300
    keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT
    preset: str = "mixed"
    transformer: bool = False
    check_frames: int = 4
    force: bool = False


def make_int8_ir(model_path: str | Path, out_xml: str | Path, options: Int8Options | None = None,
                 threads: int = 0) -> Int8Result:
    """The INT8 IR of the FP32 model at ``model_path``, calibrated as ``options`` say (frames read and
    pre-processed by the runtime) and guarded by the comparator (:func:`quantize_int8`). Raises
    :class:`BackendUnavailable` without OpenVINO/NNCF, ``InputError`` for bad calibration input,
    :class:`QuantizationRefused` when the comparison fails (unless ``force``)."""
    opts = options or Int8Options()
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"INT8 quantization needs NNCF and OpenVINO: {install_hint('openvino')} "
                                 f"({exc})") from None
    check_n = max(1, opts.check_frames)
    with Runtime.open(model_path, backend="openvino", precision="f32", cache_dir="") as rt:
        if opts.calib_dir:
            feeds = folder_calibration_feeds(rt, opts.calib_dir, opts.calib_limit + check_n)
            if len(feeds) > 2 * check_n:
                calib, check = feeds[:-check_n], feeds[-check_n:]
                source = f"{len(calib)} RGB-D pairs of {opts.calib_dir} (+{check_n} held out for the check)"
            else:
                calib, check = feeds, synthetic_calibration_feeds(rt, check_n, seed=9000)
                source = f"{len(calib)} RGB-D pairs of {opts.calib_dir}"
        else:
            n = opts.calib_synthetic or 16
            calib = synthetic_calibration_feeds(rt, n)
            check = synthetic_calibration_feeds(rt, check_n, seed=9000)
            source = f"{n} synthetic scenes (calibnet.data.synthetic, seeds 1000..{999 + n})"
    return quantize_int8(model_path, out_xml, calib, check, keep_float=opts.keep_float, preset=opts.preset,
                         transformer=opts.transformer, force=opts.force, threads=threads, calibration_source=source)


def check_bf16(model_path: str | Path, frames: int = 4) -> Any:
    """OpenVINO BF16 vs FP32 on ``frames`` held-out synthetic scenes: the comparator's report (precision
    ``bf16``). :class:`BackendUnavailable` without OpenVINO or native BF16 on this CPU."""
    with contextlib.ExitStack() as opened:
        reference = OpenVinoBackend(model_path, precision="f32", cache_dir="")
        opened.callback(reference.close)
        candidate = OpenVinoBackend(model_path, precision="bf16", cache_dir="")
        opened.callback(candidate.close)
        feeds = synthetic_calibration_feeds(Runtime(reference), frames, seed=9000)
        return compare_precision(reference, candidate, feeds, reference.metadata, "bf16")
