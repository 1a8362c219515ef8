"""Data-set-wide inference on Ray: ``calibnet-infer --ray`` and :func:`ray_batch`.

    from calibnet.serving import ray_batch
    report = ray_batch("calibnet.onnx", "COME-E/RGB", "COME-E/depth", "out/come-e", num_actors=2)

Ray Data reads the (RGB, depth) pairs of two folders (matched by file stem, image ids in sorted stem order:
exactly the pairs and ids of ``calibnet-infer --rgb-dir --depth-dir``), ``map_batches`` runs them through a
callable class holding one :class:`~calibnet.runtime.Runtime` per actor (``num_actors`` actors, each frame
read by :mod:`calibnet.runtime.core.readers` inside the actor, same-size frames of a batch run as one batch),
and the driver records each finished batch (a shard: its images and COCO results, or the error of a pair
that could not be read) in ``progress.jsonl`` of the output folder as it arrives
(:class:`calibnet.runtime.apps.batchlog.BatchLog`, the log ``calibnet-infer --resume`` uses). At the end the
shards are merged into ``results.json``, ``images.json`` and ``errors.json``, the files of ``calibnet-infer``.
A re-run on the same output folder (``resume=True``; ``calibnet-infer --ray --resume``) skips every pair
already recorded, so a job killed half-way finishes the rest without redoing or losing a pair. An actor that dies
mid-job (``ray.kill``, its worker process or node lost) fails Ray Data's execution; the job then goes on by itself
with the pairs not yet recorded (``actor_retries`` times): every pair's record is written exactly once. Progress is
shown with tqdm.

Every pair is read within the one :class:`~calibnet.runtime.core.limits.InputLimits` (``limits``) and a pair
that fails for any reason is recorded with its reason; the others go on.

Locally ``ray.init(num_cpus=...)`` starts a one-machine cluster whose node address is the loopback interface
(``127.0.0.1``) and whose token authentication is on (Ray >= 2.60 turns it on for every new local cluster; Ray's
own ports still listen on all interfaces: docs/security.md); ``address`` joins an existing one
(``ray://head:10001`` or ``auto``), whose workers need calibnet installed and the folders at the same
paths (a shared file system).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from ..runtime.apps.batch import folder_tasks
from ..runtime.apps.batchlog import BatchLog, finished_entry
from ..runtime.apps.sources import match_pairs, read_file
from ..runtime.core.depth import DepthFormat
from ..runtime.core.errors import InputError
from ..runtime.core.filecheck import one_line
from ..runtime.core.limits import InputLimits, default_limits
from ..runtime.core.readers import read_depth, read_rgb
from ..runtime.core.runtime import Runtime
from .protocol import Frame
from .server import predict_frames

__all__ = ["ray_batch", "RayBatchReport", "PairPredictor", "LOCAL_NODE_ADDRESS"]

#: the node address of a local cluster (workers and the driver talk over the loopback interface)
LOCAL_NODE_ADDRESS = "127.0.0.1"


@dataclass
class RayBatchReport:
    """What a :func:`ray_batch` run did."""

    total: int  # pairs in the folders
    skipped: int  # already recorded by an earlier run
    done: int  # finished in this run
    failed: int  # pairs that could not be read or were refused (errors.json)
    detections: int  # entries of results.json
    wall_s: float
    out: Path


class PairPredictor:
    """The callable class of ``map_batches``: one runtime per actor; a batch of pair rows in, one record
    (JSON) per pair out."""

    def __init__(self, model: str, threads: int = 1, depth_format: DepthFormat | None = None,
                 min_score: float = 0.0, strict: bool = False, limits: InputLimits | None = None) -> None:
        self.runtime = Runtime.open(model, depth_format=depth_format, strict=strict,
                                    **({"threads": threads} if threads else {}))
        self.min_score = min_score
        self.limits = limits or default_limits()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys: list[str] = []
        records: list[dict[str, Any]] = []
        ok: list[tuple[int, dict[str, Any], Frame]] = []
        for key, raw, rgb_path, depth_path in zip(batch["key"], batch["image"], batch["rgb"], batch["depth"]):
            image = json.loads(str(raw))
            keys.append(str(key))
            try:
                rgb = read_file(read_rgb, Path(str(rgb_path)), self.limits)
                depth = read_file(read_depth, Path(str(depth_path)), self.limits)
                ok.append((len(records), image, Frame(rgb, depth, self.runtime.depth_format)))
                records.append({})
            except InputError as exc:
                records.append({"image": image, "error": str(exc)})
        # one predict_batch call; when it fails, frame by frame: a failing frame is its own pair's error only
        for (slot, image, frame), pred in zip(ok, predict_frames(self.runtime, [f for _, _, f in ok])):
            if isinstance(pred, Exception):
                records[slot] = {"image": image, "error": one_line(pred)}
            else:
                image, results = finished_entry(image, frame.rgb.shape[:2], pred, self.min_score)
                records[slot] = {"image": image, "results": results}
        return {"key": np.array(keys, dtype=object), "record": np.array([json.dumps(r) for r in records], dtype=object)}


def _records(ray: Any, todo: list[dict[str, str]], predictor: dict[str, Any], num_actors: int, batch_size: int,
             threads: int) -> Any:
    """(key, record) of each pair of ``todo``, as the actors finish them (one Ray Data execution)."""
    ds = ray.data.from_items(todo, override_num_blocks=max(1, -(-len(todo) // batch_size)))
    ds = ds.map_batches(PairPredictor, batch_size=batch_size, batch_format="numpy", fn_constructor_kwargs=predictor,
                        compute=ray.data.ActorPoolStrategy(size=max(1, num_actors)), num_cpus=max(1, threads))
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for key, raw in zip(batch["key"], batch["record"]):
            yield str(key), json.loads(str(raw))


def ray_batch(model: str | Path, rgb_dir: str | Path, depth_dir: str | Path, out: str | Path, *,
              address: str | None = None, num_actors: int = 1, batch_size: int = 4, threads: int = 1,
              num_cpus: int | None = None, depth_format: DepthFormat | None = None, min_score: float = 0.0,
              strict: bool = False, resume: bool = True, progress: bool = True,
              limits: InputLimits | None = None, actor_retries: int = 3) -> RayBatchReport:
    """Run ``model`` over the pairs of ``rgb_dir``/``depth_dir`` on Ray, writing (and resuming) ``out``
    (see the module docs). ``num_actors`` runtimes (each ``threads`` intra-op threads, reserving that many
    CPUs), ``batch_size`` pairs per ``map_batches`` call; ``num_cpus`` bounds a local cluster (default: all);
    ``address`` joins an existing cluster instead; ``resume=False`` starts ``out`` over; ``limits``: the input
    limits of every pair (default :func:`~calibnet.runtime.core.limits.default_limits`); ``actor_retries``: how many
    times a job whose actor died (``ray.kill``, its process or node lost) goes on with the pairs not yet recorded,
    on a new pool of actors, before it fails."""

    import ray

    t0 = time.perf_counter()
    model = Path(model).resolve()
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    pairs = match_pairs(Path(rgb_dir).resolve(), Path(depth_dir).resolve())
    out = Path(out)
    log = BatchLog(out, resume=resume)
    tasks = [{"key": t.key, "image": json.dumps(t.image), "rgb": str(r), "depth": str(d)}
             for t, (r, d) in zip(folder_tasks(pairs), pairs)]
    todo = [t for t in tasks if not log.done(t["key"])]
    skipped = len(tasks) - len(todo)
    if skipped:
        print(f"calibnet-infer --ray: resuming: {skipped} of {len(tasks)} pairs already done in {out}",
              file=sys.stderr)
    done = failed = 0
    try:
        if todo:
            if not ray.is_initialized():
                init: dict[str, Any] = ({"address": address} if address else
                                        {"num_cpus": num_cpus, "_node_ip_address": LOCAL_NODE_ADDRESS})
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **init)
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
            predictor = {"model": str(model), "threads": threads, "depth_format": depth_format,
                         "min_score": min_score, "strict": strict, "limits": limits or default_limits()}
            recorded: set[str] = set()  # keys recorded by this run (an error is not tried twice in one run)
            with tqdm(total=len(tasks), initial=skipped, desc="infer (ray)", unit="img",
                      disable=not progress) as bar:
                for attempt in range(actor_retries + 1):
                    todo = [t for t in todo if t["key"] not in recorded]
                    if not todo:
                        break
                    try:
                        for key, rec in _records(ray, todo, predictor, num_actors, batch_size, threads):
                            recorded.add(key)
                            if "error" in rec:
                                log.add_error(key, rec["image"], rec["error"])
                                failed += 1
                                print(f"calibnet-infer --ray: {rec['image']['file_name']}: {rec['error']}",
                                      file=sys.stderr)
                            else:
                                log.add_result(key, rec["image"], rec["results"])
                                done += 1
                            bar.update(1)
                        break
                    except ray.exceptions.RayActorError as exc:  # ray.kill, its process or node lost
                        if attempt == actor_retries:
                            raise
                        left = sum(t["key"] not in recorded for t in todo)
                        print(f"calibnet-infer --ray: an actor died ({type(exc).__name__}); going on with the {left} "
                              "pairs not yet recorded", file=sys.stderr)
    finally:
        n_det, _ = log.write_outputs()
        log.close()
    return RayBatchReport(len(tasks), skipped, done, failed, n_det, time.perf_counter() - t0, out)
