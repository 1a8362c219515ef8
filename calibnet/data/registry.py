"""Where the RGB-D instance data sets live: :class:`DatasetSpec` and the registry of official names.

The official CalibNet code registers five COCO-json data sets relative to one root folder
(``DETECTRON2_DATASETS``); the same names and relative paths are used here:

=================  ==========================  ========================================  =====================
name               images                      annotations                               depth maps
=================  ==========================  ========================================  =====================
come15k_train      COME15K/train/imgs_right    COME15K/annotations/COME15K-Train.json    COME15K/train/depths
come15k_test_e     COME15K/COME-E/RGB          COME15K/annotations/COME15K-Test-E.json   COME15K/COME-E/depth
come15k_test_h     COME15K/COME-H/RGB          COME15K/annotations/COME15K-Test-H.json   COME15K/COME-H/depth
dsis_test          DSIS/RGB                    DSIS/DSIS.json                            DSIS/depth
sip_test           SIP/RGB                     SIP/SIP.json                              SIP/depth
=================  ==========================  ========================================  =====================

The official mappers find a depth map by rewriting the RGB path (``imgs_right`` -> ``depths`` for
training, ``RGB`` -> ``depth`` for testing, ``jpg`` -> ``png``). Here the rule is explicit and
configurable: the depth map of image ``<image_root>/<file_name>`` is ``<depth_root>/<file_name>`` with
its suffix replaced by ``depth_suffix`` (default ``.png``); without a depth folder, the one beside the
RGB folder by the official rename (:func:`default_depth_root`).

A data set of your own is a COCO json (:func:`dataset_spec_from_json`; its RGB folder defaults to ``RGB/``
beside the json) or a small spec json ``{name, json_file, image_root, depth_root[, depth_suffix]}``;
:func:`resolve_dataset` takes a registered name or either file, the one entry point of every CLI.

Names from a json stay inside their folders (:func:`path_inside`): a ``file_name`` with ``..`` parts, or an
absolute one that is not under an absolute ``image_root`` the user gave, is refused, and so is every output path
derived from it; a data-set name must be a plain file name (it becomes part of output file names).

This module does not import torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatasetError", "DatasetSpec", "OFFICIAL_DATASETS", "DATA_ROOT_ENV", "DEPTH_FOLDER_OF", "dataset_names",
           "dataset_spec_from_json", "default_depth_root", "get_dataset_spec", "path_inside", "register_dataset",
           "resolve_data_root", "resolve_dataset"]

#: Environment variables read (in this order) when no data root is given.
DATA_ROOT_ENV = ("CALIBNET_DATASETS", "DETECTRON2_DATASETS")


class DatasetError(ValueError):
    """A data set that cannot be used; the message names the missing or broken file or folder."""


def path_inside(root: str | Path, file_name: str | Path, what: str = "file") -> Path:
    """``root / file_name`` for a name read from a data set (a json's ``file_name``, a path derived from it),
    compared lexically (the user's own symbolic links are followed as usual). :class:`DatasetError` naming it
    when it leaves ``root``: ``..`` parts, or an absolute name that is not under ``root`` given as an absolute
    path."""
    name, base = str(file_name), Path(root)
    if not name or "\0" in name:
        raise DatasetError(f"{what} {name!r}: not a file name")
    norm = os.path.normpath(name)
    if os.path.isabs(norm):
        if base.is_absolute():
            rel = os.path.relpath(norm, os.path.normpath(base))
            if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                return base / rel
        raise DatasetError(f"{what} {name!r} is outside {base}: an absolute name must lie under the folder, given "
                           "as an absolute path")
    if norm in (os.curdir, os.pardir) or norm.startswith(os.pardir + os.sep):
        raise DatasetError(f"{what} {name!r} leaves its folder {base} (a '..' part)")
    return base / norm


@dataclass(frozen=True)
class DatasetSpec:
    """One COCO-json instance data set with depth: the json, the RGB folder and the depth folder.

    ``file_name`` entries of the json are relative to ``image_root`` (absolute names are used as they
    are, as detectron2 does); see :meth:`depth_path` for the depth rule.
    """

    name: str
    json_file: Path
    image_root: Path
    depth_root: Path
    depth_suffix: str | None = ".png"  # None: keep the RGB file's suffix

    def __post_init__(self) -> None:
        for field_name in ("json_file", "image_root", "depth_root"):
            object.__setattr__(self, field_name, Path(getattr(self, field_name)))
        name = str(self.name)
        if name in ("", os.curdir, os.pardir) or any(c in name for c in "/\\\0"):
            raise DatasetError(f"data-set name {name!r} is not a plain name (it becomes part of output file names)")

    def image_path(self, file_name: str) -> Path:
        """The RGB file of a json ``file_name``, inside ``image_root`` (:func:`path_inside`)."""
        return path_inside(self.image_root, file_name, f"{self.name}: image")

    def relative_name(self, file_name: str) -> Path:
        """A json ``file_name`` relative to ``image_root`` (:func:`path_inside`'s rule): where files derived from
        it go, under another folder."""
        return self.image_path(file_name).relative_to(self.image_root)

    def depth_path(self, file_name: str) -> Path:
        """The depth map of a json ``file_name``: the same relative path under ``depth_root``, suffix
        replaced by ``depth_suffix``. An absolute ``file_name`` under ``image_root`` is made relative first."""
        rel = self.relative_name(file_name)
        if self.depth_suffix is not None:
            rel = rel.with_suffix(self.depth_suffix)
        return self.depth_root / rel

    def check(self) -> DatasetSpec:
        """Raise :class:`DatasetError` naming the first missing file or folder; return self."""
        if not self.json_file.is_file():
            raise DatasetError(f"{self.name}: annotation file not found: {self.json_file}")
        for what, folder in (("image folder", self.image_root), ("depth folder", self.depth_root)):
            if not folder.is_dir():
                raise DatasetError(f"{self.name}: {what} not found: {folder}")
        return self


#: The official depth folder of an RGB folder (the official mappers' path rewrite).
DEPTH_FOLDER_OF = {"RGB": "depth", "imgs_right": "depths", "rgb": "depth"}


def default_depth_root(image_root: str | Path) -> Path:
    """The depth folder beside an RGB folder by the official rule (``RGB`` -> ``depth``,
    ``imgs_right`` -> ``depths``); :class:`DatasetError` for a folder the rule does not cover."""
    image_root = Path(image_root)
    if image_root.name in DEPTH_FOLDER_OF:
        return image_root.with_name(DEPTH_FOLDER_OF[image_root.name])
    raise DatasetError(f"cannot derive the depth folder of {image_root} (the official rule maps RGB -> depth and "
                       "imgs_right -> depths): give --depth-root")


# name -> (image root, json file, depth root), relative to the data root (official layout)
OFFICIAL_DATASETS: dict[str, tuple[str, str, str]] = {
    "come15k_train": ("COME15K/train/imgs_right", "COME15K/annotations/COME15K-Train.json", "COME15K/train/depths"),
    "come15k_test_e": ("COME15K/COME-E/RGB", "COME15K/annotations/COME15K-Test-E.json", "COME15K/COME-E/depth"),
    "come15k_test_h": ("COME15K/COME-H/RGB", "COME15K/annotations/COME15K-Test-H.json", "COME15K/COME-H/depth"),
    "dsis_test": ("DSIS/RGB", "DSIS/DSIS.json", "DSIS/depth"),
    "sip_test": ("SIP/RGB", "SIP/SIP.json", "SIP/depth"),
}

_REGISTRY: dict[str, tuple[str, str, str]] = dict(OFFICIAL_DATASETS)


def register_dataset(name: str, image_root: str, json_file: str, depth_root: str) -> None:
    """Add (or replace) a named data set; relative paths are resolved against the data root later."""
    _REGISTRY[name] = (image_root, json_file, depth_root)


def dataset_names() -> list[str]:
    """Every registered name (the official five first)."""
    return list(_REGISTRY)


def resolve_data_root(data_root: str | Path | None) -> Path:
    """``data_root``, else ``$CALIBNET_DATASETS``, else ``$DETECTRON2_DATASETS`` (the official variable)."""
    if data_root is not None:
        return Path(data_root)
    for var in DATA_ROOT_ENV:
        if os.environ.get(var):
            return Path(os.environ[var])
    raise DatasetError("no data root: pass one (--data-root DIR) or set " + " or ".join(DATA_ROOT_ENV))


def get_dataset_spec(name: str, data_root: str | Path | None = None, check: bool = True) -> DatasetSpec:
    """The :class:`DatasetSpec` of a registered data set under ``data_root``.

    Raises :class:`DatasetError` for an unknown name (listing the known ones) or, with ``check``,
    naming the annotation file / image folder / depth folder that is missing.
    """
    if name not in _REGISTRY:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(_REGISTRY)}")
    root = resolve_data_root(data_root)
    image_root, json_file, depth_root = _REGISTRY[name]
    spec = DatasetSpec(name, root / json_file, root / image_root, root / depth_root)
    if check:
        if not root.is_dir():
            raise DatasetError(f"data root not found: {root}")
        spec.check()
    return spec


def _json_name(path: Path) -> str:
    """A data-set name for a json: its stem, or its folder's name for generic stems (annotations.json)."""
    folder = path.resolve().parent.name
    return folder if path.stem.lower() in ("annotations", "instances", "gt", "ground_truth") and folder else path.stem


def dataset_spec_from_json(json_file: str | Path, image_root: str | Path | None = None,
                           depth_root: str | Path | None = None, name: str | None = None,
                           depth_suffix: str | None = ".png", check: bool = True) -> DatasetSpec:
    """The :class:`DatasetSpec` of a COCO instances json, or of a spec json ``{name, json_file, image_root,
    depth_root[, depth_suffix]}`` (relative paths relative to the spec file).

    For a COCO json the RGB folder defaults to ``RGB/`` beside it and the depth folder to
    :func:`default_depth_root` of the RGB folder; the name to ``name``, else the json's stem (its folder's
    name for generic stems such as ``annotations.json``). :class:`DatasetError` naming the file or folder
    that is missing or not what it should be.
    """
    path = Path(json_file)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path} as JSON ({exc})") from None
    if isinstance(raw, dict) and "json_file" in raw:
        fields = {k: raw[k] if k in ("name", "depth_suffix") or Path(raw[k]).is_absolute() else path.parent / raw[k]
                  for k in ("name", "json_file", "image_root", "depth_root", "depth_suffix") if k in raw}
        missing = {"json_file", "image_root", "depth_root"} - set(fields)
        if missing:
            raise DatasetError(f"{path}: data-set spec without {', '.join(sorted(missing))}")
        spec = DatasetSpec(**{"name": path.stem, **fields, **({"name": name} if name else {})})
    elif isinstance(raw, dict) and "images" in raw:
        image = Path(image_root) if image_root is not None else path.parent / "RGB"
        depth = Path(depth_root) if depth_root is not None else default_depth_root(image)
        spec = DatasetSpec(name or _json_name(path), path, image, depth, depth_suffix)
    else:
        raise DatasetError(f"{path} is neither a COCO annotation file nor a data-set spec "
                           "(name, json_file, image_root, depth_root)")
    return spec.check() if check else spec


def resolve_dataset(ref: str | Path, data_root: str | Path | None = None, image_root: str | Path | None = None,
                    depth_root: str | Path | None = None, check: bool = True) -> DatasetSpec:
    """A registered data-set name (under ``data_root``) or a json file (:func:`dataset_spec_from_json`)."""
    if str(ref) in _REGISTRY and not Path(ref).is_file():
        return get_dataset_spec(str(ref), data_root, check=check)
    if not Path(ref).is_file():
        raise DatasetError(f"no such file or registered data set: {ref} (registered: {', '.join(_REGISTRY)})")
    return dataset_spec_from_json(ref, image_root, depth_root, check=check)
