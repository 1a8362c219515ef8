"""The data-set options every calibnet CLI shares, declared once (:func:`add_dataset_arguments`: ``--dataset
NAME... [--data-root DIR]`` or ``--json GT.json [--image-root DIR] [--depth-root DIR]``) and resolved once
(:func:`specs_from_args` -> checked :class:`~calibnet.data.DatasetSpec` list, by the rules of
:mod:`calibnet.data.registry`). No torch.
"""

from __future__ import annotations

import argparse
from typing import Any

from .registry import DatasetError, DatasetSpec, dataset_names, dataset_spec_from_json, get_dataset_spec

__all__ = ["add_dataset_arguments", "specs_from_args"]


def add_dataset_arguments(parser: Any, *, json_flags: tuple[str, ...] = ("--json",), several: bool = True,
                          data_root_default: str | None = None) -> Any:
    """Add the data-set options to ``parser`` (an ArgumentParser or an argument group); returns it.

    ``json_flags`` names the COCO-json option (stored as ``args.json``), ``several`` lets ``--dataset`` take
    several names, ``data_root_default`` is the ``--data-root`` default (None: ``$CALIBNET_DATASETS``, then
    ``$DETECTRON2_DATASETS``)."""
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


def specs_from_args(args: argparse.Namespace, required: bool = True) -> list[DatasetSpec]:
    """The checked :class:`DatasetSpec` of every data set the options name (registered ones first).

    :class:`DatasetError` naming what is missing; also when none is named and ``required``, or a name twice."""
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
