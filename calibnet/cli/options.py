"""The option groups every calibnet command builds its parser from, each declared once, and their conversion
into the typed options the libraries take (never an argparse namespace).

Help texts come from the code's own tables: the backends, their file types and precisions from the table of
targets (:mod:`calibnet.runtime.core.targets`), the model presets from :data:`calibnet.config.PRESETS`, the data
sets from the registry (:mod:`calibnet.data.registry`). A new option shared by several commands goes here; an
option of one command goes into that command's module.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from calibnet.config import DEFAULT_PRESET, PRESETS
from calibnet.data.registry import DatasetError, DatasetSpec, dataset_names, dataset_spec_from_json, get_dataset_spec
from calibnet.runtime import DepthFormat, Runtime
from calibnet.runtime.core.depth import DEPTH_DIRECTIONS, DEPTH_KINDS
from calibnet.runtime.core.filecheck import file_problem, one_line
from calibnet.runtime.core.limits import BYTES_ENV, MAX_INPUT_BYTES, MAX_PIXELS, PIXELS_ENV, InputLimits, default_limits
from calibnet.runtime.core.runtime import OpenOptions
from calibnet.runtime.core.targets import TARGETS, suffixes_help

from .app import CliError

__all__ = ["add_model", "open_options", "open_runtime", "add_checkpoint", "checkpoint_files", "add_input_size", "hw",
           "add_threads", "add_dataset", "dataset_specs", "add_depth", "depth_format", "add_input_limits",
           "input_limits", "non_negative", "add_output", "typed_options"]

Group = Any  # an ArgumentParser or an argument group
_T = TypeVar("_T")


def typed_options(cls: type[_T], args: argparse.Namespace, **own: Any) -> _T:
    """The typed options ``cls`` (a dataclass) of parsed ``args``: each field from the option of its name, or from
    ``own`` where the option differs (another name, a conversion); a field with neither is an ``AttributeError``."""
    return cls(**{f.name: own[f.name] if f.name in own else getattr(args, f.name) for f in fields(cls)})


def add_model(parser: Group, *, several: bool = False, precision: bool = True) -> Group:
    """MODEL (one, or several with ``several``), ``--backend``, ``--precision`` (unless ``precision`` is False),
    ``--threads``."""
    parser.add_argument("models" if several else "model", nargs="+" if several else None, metavar="MODEL",
                        help=f"model file{'(s)' if several else ''}: {suffixes_help()}; the file type picks the "
                             "backend unless --backend names one")
    backends = "; ".join(f"{t.name}: {t.summary}" + (f" [{'/'.join(t.precisions)}]" if len(t.precisions) > 1 else "")
                         for t in TARGETS.values())  # one phrase per backend: its name, precisions, what it runs
    parser.add_argument("--backend", choices=list(TARGETS), help=f"run on this backend ({backends})")
    if precision:
        choices = "; ".join(f"{t.name} {'/'.join(t.precisions)}" for t in TARGETS.values() if len(t.precisions) > 1)
        parser.add_argument("--precision", help=f"the backend's precision where it has a choice ({choices}; "
                                                "default: the first)")
    add_threads(parser)
    return parser


def open_options(args: argparse.Namespace, **overrides: Any) -> OpenOptions:
    """The :class:`OpenOptions` of :func:`add_model`'s (and :func:`add_checkpoint`'s) options."""
    values = {k: getattr(args, k, None) for k in ("backend", "precision", "config", "device")}
    return OpenOptions(**{**values, "threads": getattr(args, "threads", 0) or 0, **overrides})


def open_runtime(path: str | Path, options: OpenOptions, **runtime: Any) -> Runtime:
    """The one way a command opens a model: a broken file is named with what is wrong with it, a file the
    backend cannot load or that is not a CalibNet graph is a :class:`CliError` naming it."""
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise CliError(f"{path}: {problem}")
    try:
        rt = Runtime.open(path, options=options, **runtime)
    except ValueError as exc:
        raise CliError(str(exc) if str(path) in str(exc) else f"{path}: {one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model file for the user
        raise CliError(f"{path}: cannot load the model ({one_line(exc)})") from None
    names, expected = set(rt.backend.input_names), set(rt.metadata.input_names)
    if names != expected:
        rt.close()
        raise CliError(f"{path}: not a CalibNet model (inputs {sorted(names)}; expected {sorted(expected)})")
    return rt


def add_checkpoint(parser: Group, *, config_default: str | None = DEFAULT_PRESET, weights_help: str = "") -> Group:
    """``--config`` (a preset or an official YAML) and ``--weights`` (a checkpoint)."""
    default = f"default {config_default}" if config_default else "default: the recipe's or " + DEFAULT_PRESET
    parser.add_argument("--config", default=config_default,
                        help=f"model preset ({', '.join(PRESETS)}) or official YAML file ({default})")
    parser.add_argument("--weights", help=weights_help or "checkpoint: detectron2 format ({'model': state_dict}) or "
                        "a bare state dict (default: calibnet's deterministic weights: outputs are meaningless)")
    return parser


def checkpoint_files(args: argparse.Namespace) -> list[str | None]:
    """The files :func:`add_checkpoint`'s options name: the weights, and the config when it is a file name (has a
    suffix or a folder), not a preset."""
    config = getattr(args, "config", None)
    is_file = config is not None and (Path(str(config)).suffix or len(Path(str(config)).parts) > 1)
    return [getattr(args, "weights", None), config if is_file else None]


def hw(text: str) -> tuple[int, int]:
    """``"320x480"`` -> ``(320, 480)`` (an argparse type)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 320x480, got {text!r}") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"a size must be at least 32x32, got {text}")
    return h, w


def _multiple_of_32(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive multiple of 32, got {text!r}") from None
    if v < 32 or v % 32:
        raise argparse.ArgumentTypeError(f"expected a positive multiple of 32, got {v}")
    return v


def add_input_size(parser: Group, default: tuple[int, int] = (320, 480), what: str = "network input") -> Group:
    """``--height`` / ``--width``: the (static or optimal) network input size, multiples of 32."""
    parser.add_argument("--height", type=_multiple_of_32, default=default[0],
                        help=f"{what} height, a multiple of 32 (default {default[0]})")
    parser.add_argument("--width", type=_multiple_of_32, default=default[1],
                        help=f"{what} width, a multiple of 32 (default {default[1]})")
    return parser


def add_threads(parser: Group, default: int = 0) -> Group:
    """``--threads``: CPU threads of the backend (torch, ONNX Runtime, OpenVINO)."""
    parser.add_argument("--threads", type=int, default=default,
                        help=f"CPU threads of torch / ONNX Runtime / OpenVINO ({default or 'default: theirs'})")
    return parser


def add_dataset(parser: Group, *, json_flags: tuple[str, ...] = ("--json",), several: bool = True,
                data_root_default: str | None = None) -> Group:
    """The data-set options: ``--dataset NAME... [--data-root DIR]`` or ``--json GT.json [--image-root DIR]
    [--depth-root DIR]`` (``json_flags`` names the json option, ``several``: several names)."""
    parser.add_argument("--dataset", nargs="+" if several else None, metavar="NAME",
                        help=f"registered data set{'(s)' if several else ''}: {', '.join(dataset_names())}")
    parser.add_argument("--data-root", default=data_root_default,
                        help="folder holding COME15K/, DSIS/, SIP/ (default "
                             f"{data_root_default or '$CALIBNET_DATASETS or $DETECTRON2_DATASETS'})")
    parser.add_argument(*json_flags, dest="json", help="a COCO instances json of your own data set, or a spec json "
                        "{name, json_file, image_root, depth_root}")
    parser.add_argument("--image-root", help="its RGB folder (json file names are relative to it; default RGB/ "
                                             "beside the json)")
    parser.add_argument("--depth-root", help="its depth folder (default: RGB -> depth, imgs_right -> depths)")
    parser.add_argument("--depth-suffix", default=".png", help="depth file suffix (default .png)")
    parser.add_argument("--name", help="name of the json data set in tables (default: the json's stem)")
    return parser


def dataset_specs(args: argparse.Namespace, required: bool = True) -> list[DatasetSpec]:
    """The checked :class:`DatasetSpec` of every data set :func:`add_dataset`'s options name (registered ones
    first); ``DatasetError`` naming what is missing, also when none is named and ``required``, or one twice."""
    names = args.dataset if isinstance(args.dataset, list) else [args.dataset] if args.dataset else []
    specs = [get_dataset_spec(name, args.data_root) for name in names]
    if args.json:
        specs.append(dataset_spec_from_json(args.json, args.image_root, args.depth_root, args.name,
                                            args.depth_suffix))
    if required and not specs:
        raise DatasetError("give --dataset NAME [--data-root DIR] or --json GT.json --image-root DIR (see --help)")
    taken = [s.name for s in specs]
    if len(set(taken)) != len(taken):
        raise DatasetError(f"data set named twice: {taken}")
    return specs


def add_depth(parser: Group) -> Group:
    """How depth maps are read: ``--depth-format``, ``--depth-near``/``--depth-far``, ``--depth-direction``."""
    parser.add_argument("--depth-format", choices=DEPTH_KINDS, default="auto",
                        help="auto (default): 8-bit used as is, 16-bit/float = metric depth; u8-inverted: an 8-bit "
                             "map in the other convention; disparity: larger = nearer")
    parser.add_argument("--depth-near", type=float, help="fixed near end of the range, in the map's units (e.g. mm)")
    parser.add_argument("--depth-far", type=float, help="fixed far end of the range (default: per-frame min-max)")
    parser.add_argument("--depth-direction", choices=DEPTH_DIRECTIONS,
                        help="the model's 8-bit convention (default: from the model, near-dark for official weights)")
    return parser


def depth_format(args: argparse.Namespace) -> DepthFormat:
    """The :class:`DepthFormat` of :func:`add_depth`'s options."""
    return DepthFormat(args.depth_format, args.depth_near, args.depth_far, args.depth_direction)


def non_negative(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` (int or float) >= 0."""
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
        return value

    return convert


def add_input_limits(parser: Group) -> Group:
    """``--max-pixels`` / ``--max-input-mb``: the input limits (:mod:`calibnet.runtime.core.limits`), checked from
    each input's header before it is decoded."""
    parser.add_argument("--max-pixels", type=non_negative(int),
                        help=f"refuse images and depth maps with more pixels, before decoding them (default "
                             f"{MAX_PIXELS:,} or ${PIXELS_ENV}; 0: no limit)")
    parser.add_argument("--max-input-mb", type=non_negative(float),
                        help=f"refuse larger input files and request inputs without decoding them (default "
                             f"{MAX_INPUT_BYTES / 2**20:g} MiB or ${BYTES_ENV} bytes; 0: no limit)")
    return parser


def input_limits(args: argparse.Namespace) -> InputLimits:
    """The :class:`InputLimits` of :func:`add_input_limits`'s options over the defaults (:func:`default_limits`:
    a bad ``$CALIBNET_MAX_...`` value is a ``ValueError``, a user error)."""
    base = default_limits()
    return InputLimits(base.max_pixels if args.max_pixels is None else int(args.max_pixels),
                       base.max_bytes if args.max_input_mb is None else int(args.max_input_mb * 2**20))


def add_output(parser: Group, default: str | None, what: str = "output folder") -> Group:
    """``--out``: where the command writes (``default`` None: ``what`` says where)."""
    parser.add_argument("--out", default=default, help=what if default is None else f"{what} (default {default})")
    return parser
