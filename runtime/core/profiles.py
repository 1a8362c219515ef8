"""Optimization profiles (min/opt/max input shapes) derived from the ONNX metadata contract.

A profile maps each network input to three shapes. CalibNet's inputs are ``rgb`` [B,3,H,W],
``depth`` [B,1,H,W] and ``valid_hw`` [B,2]; the batch and the H/W ranges come from
:class:`calibnet.runtime.core.contract.ModelMetadata` (``batch``/``max_batch``/``dynamic_batch``,
``height``/``width``/``min_hw``/``max_hw``/``dynamic_hw``, ``size_divisibility``). Pure Python: no TensorRT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .contract import INPUT_NAMES, ModelMetadata

__all__ = ["ShapeRange", "Profile", "profiles_from_metadata", "validate_profile", "profiles_to_json",
           "profiles_from_json", "parse_profile_spec"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shapes of one input tensor in one optimization profile."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not (len(self.min) == len(self.opt) == len(self.max)):
            raise ValueError(f"min/opt/max have different ranks: {self.min}, {self.opt}, {self.max}")
        for lo, mid, hi in zip(self.min, self.opt, self.max):
            if not (1 <= lo <= mid <= hi):
                raise ValueError(f"need 1 <= min <= opt <= max per dimension, got {self.min}/{self.opt}/{self.max}")

    @property
    def is_static(self) -> bool:
        """True when min == opt == max."""
        return self.min == self.opt == self.max

    def contains(self, shape: Iterable[int]) -> bool:
        """True when ``shape`` lies inside [min, max] in every dimension."""
        s = tuple(int(d) for d in shape)
        return len(s) == len(self.min) and all(lo <= d <= hi for lo, d, hi in zip(self.min, s, self.max))


Profile = dict[str, ShapeRange]


def _io_shapes(batch: int, h: int, w: int) -> dict[str, Shape]:
    return dict(zip(INPUT_NAMES, ((batch, 3, h, w), (batch, 1, h, w), (batch, 2))))


def profiles_from_metadata(meta: ModelMetadata) -> list[Profile]:
    """One optimization profile covering the batch and H/W ranges the ONNX metadata declares.

    Static axes get min == opt == max. Dynamic batch: min 1, opt ``batch``, max ``max_batch``.
    Dynamic H/W: min ``min_hw``, opt (``height``, ``width``), max ``max_hw``; every bound must be a
    multiple of ``size_divisibility`` (checked by :func:`validate_profile`).
    """
    b_opt, h, w = int(meta.batch), int(meta.height), int(meta.width)
    b_min, b_max = (1, max(int(meta.max_batch), b_opt)) if meta.dynamic_batch else (b_opt, b_opt)
    lo_hw, hi_hw = ((int(meta.min_hw[0]), int(meta.min_hw[1])), (int(meta.max_hw[0]), int(meta.max_hw[1]))) \
        if meta.dynamic_hw else ((h, w), (h, w))
    lo, opt, hi = _io_shapes(b_min, *lo_hw), _io_shapes(b_opt, h, w), _io_shapes(b_max, *hi_hw)
    names = [n for n in meta.input_names if n in lo] or list(lo)
    try:
        profile = {n: ShapeRange(lo[n], opt[n], hi[n]) for n in names}
    except ValueError as e:
        raise ValueError(f"inconsistent shape metadata (batch/min_hw/max_hw/height/width): {e}") from None
    validate_profile(profile, int(meta.size_divisibility))
    return [profile]


def validate_profile(profile: Mapping[str, ShapeRange], size_divisibility: int = 32) -> None:
    """Check a CalibNet profile: H and W of ``rgb``/``depth`` multiples of ``size_divisibility``, equal
    batch and H/W ranges for ``rgb`` and ``depth``. Raises ``ValueError`` naming the problem."""
    for name in INPUT_NAMES[:2]:  # rgb, depth
        r = profile.get(name)
        if r is None:
            continue
        if len(r.min) != 4:
            raise ValueError(f"{name}: expected a 4-D shape [B,C,H,W], got {r.min}")
        for label, s in (("min", r.min), ("opt", r.opt), ("max", r.max)):
            if s[2] % size_divisibility or s[3] % size_divisibility:
                raise ValueError(f"{name} {label} shape {s}: H and W must be multiples of {size_divisibility}")
    if "rgb" in profile and "depth" in profile:
        a, b = profile["rgb"], profile["depth"]
        for label in ("min", "opt", "max"):
            sa, sb = getattr(a, label), getattr(b, label)
            if (sa[0], sa[2], sa[3]) != (sb[0], sb[2], sb[3]):
                raise ValueError(f"rgb and depth {label} shapes disagree on B/H/W: {sa} vs {sb}")


def profiles_to_json(profiles: Iterable[Mapping[str, ShapeRange]]) -> list[dict[str, dict[str, list[int]]]]:
    """JSON form: ``[{"rgb": {"min": [...], "opt": [...], "max": [...]}, ...}, ...]`` (sorted names)."""
    return [{n: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for n, r in sorted(p.items())}
            for p in profiles]


def profiles_from_json(obj: Any) -> list[Profile]:
    """Inverse of :func:`profiles_to_json`; also accepts one profile dict and ``[min, opt, max]`` lists."""
    def shape_range(r: Any) -> ShapeRange:
        if isinstance(r, ShapeRange):
            return r
        lo, mid, hi = (r["min"], r["opt"], r["max"]) if isinstance(r, Mapping) else r
        return ShapeRange(tuple(lo), tuple(mid), tuple(hi))

    items = [obj] if isinstance(obj, Mapping) else obj
    return [{name: shape_range(r) for name, r in p.items()} for p in items]


_SPEC = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:\s*([\dx]+)\s*,\s*([\dx]+)\s*,\s*([\dx]+)\s*$")


def parse_profile_spec(specs: Iterable[str]) -> Profile:
    """Parse CLI specs like ``rgb:1x3x320x320,1x3x320x480,2x3x480x480`` (name:min,opt,max) into a profile."""
    prof: Profile = {}
    for spec in specs:
        for part in spec.split(";"):
            if not part.strip():
                continue
            m = _SPEC.match(part)
            if not m:
                raise ValueError(f"bad profile spec {part!r}: expected NAME:MIN,OPT,MAX with shapes like 1x3x320x480")
            name, *shapes = m.groups()
            dims = [tuple(int(d) for d in s.split("x") if d) for s in shapes]
            prof[name] = ShapeRange(dims[0], dims[1], dims[2])
    return prof
