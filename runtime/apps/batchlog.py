"""The output folder of a batch run that never loses finished work (calibnet-infer folder / video / Ray runs).

Files in the output folder:

- ``progress.jsonl``: one line per input as soon as it is done: ``{"key", "image", "results"}`` for a
  finished image (its ``images.json`` entry and COCO results) or ``{"key", "image", "error"}`` for one that
  could not be read or was refused. Appended and flushed line by line, so a run killed even with SIGKILL (the
  OOM killer) keeps everything up to the last finished image. Read back, a torn last line is dropped; a resumed
  run first writes the surviving records to a new file that replaces the old one atomically, then appends.
- ``results.json`` (COCO results; each detection also names its ``instance_depth`` and its frame's
  ``depth_health``), ``images.json`` (id, file name, size and the frame's ``depth_health``: invalid share,
  depth trust, verdict) and ``errors.json`` (``[{"image_id", "file", "reason"}]``),
  written at the end of the run, and again whenever it is interrupted, atomically (a temp file in the same
  folder, fsync, rename, fsync of the folder): a reader never sees a half-written file, and the temp files of a
  run killed while writing them are removed by the next run.

A power loss (rather than a killed process) may lose the last lines the disk had not yet received (they are not
synced one by one); a resumed run redoes those inputs.

``BatchLog(out, resume=True)`` reads ``progress.jsonl`` back: :meth:`BatchLog.done` says which keys are
finished, so a resumed run skips them; inputs that failed before are tried again. Keys are the input's
identity (the RGB file name, or the video frame index), image ids come from the input's position in the
sorted input list, so a resumed run writes exactly the files an uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.closing import Closing

__all__ = ["BatchLog", "OUTPUTS", "PROGRESS_JSONL", "finished_entry", "write_json_atomic"]

PROGRESS_JSONL = "progress.jsonl"
#: the files written at the end of a run (and when it is interrupted)
OUTPUTS = ("results.json", "images.json", "errors.json")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temp file in the same folder and a rename, then sync the folder
    so that the rename is on disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    _write_atomic(path, json.dumps(obj, indent=indent))
    return path


def finished_entry(image: dict[str, Any], hw: tuple[int, int], pred: Any,
                   min_score: float = 0.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``images.json`` entry (``image`` plus height, width and the frame's ``depth_health``) and the COCO
    results (scores at least ``min_score``) of a finished frame of size ``hw`` and its Prediction."""
    entry = {**image, "height": int(hw[0]), "width": int(hw[1])}
    if pred.depth_health is not None:
        entry["depth_health"] = pred.depth_health.to_dict()
    return entry, [r for r in pred.coco_results(image["id"]) if r["score"] >= min_score]


class BatchLog(Closing):
    """Progress of one batch run in ``out`` (see the module doc). ``resume=False`` starts over."""

    def __init__(self, out: str | Path, resume: bool = False) -> None:
        self.out = Path(out)
        self.path = self.out / PROGRESS_JSONL
        self.records: dict[str, dict[str, Any]] = {}
        if resume and self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # torn last line of a killed run
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    self.records[str(rec["key"])] = rec
        self._file: Any = None  # opened on the first record: a run that fails before any input writes nothing

    def _open(self) -> Any:
        if self._file is None:
            self.out.mkdir(parents=True, exist_ok=True)
            for name in (PROGRESS_JSONL, *OUTPUTS):  # temp files of a run killed while it wrote them
                for stale in self.out.glob(f".{name}.*.tmp"):
                    stale.unlink(missing_ok=True)
            if self.records:  # the surviving records (a torn line dropped) replace the old file at once
                _write_atomic(self.path, "".join(json.dumps(rec) + "\n" for rec in self.records.values()))
            self._file = self.path.open("a" if self.records else "w")
        return self._file

    def done(self, key: str) -> bool:
        """Whether ``key`` finished in this or an earlier (resumed) run."""
        return "results" in self.records.get(str(key), {})

    def _append(self, rec: dict[str, Any]) -> None:
        f = self._open()
        self.records[str(rec["key"])] = rec
        f.write(json.dumps(rec) + "\n")
        f.flush()

    def add_result(self, key: str, image: dict[str, Any], results: list[dict[str, Any]]) -> None:
        """Record a finished input: its ``images.json`` entry and COCO results."""
        self._append({"key": str(key), "image": image, "results": results})

    def add_error(self, key: str, image: dict[str, Any], reason: str) -> None:
        """Record an input that could not be read or was refused (``image``: id, file name, ...)."""
        self._append({"key": str(key), "image": image, "error": reason})

    @property
    def errors(self) -> list[dict[str, Any]]:
        """``errors.json`` entries, by image id."""
        out = [{"image_id": r["image"].get("id"), "file": r["image"].get("file_name"), **(
            {"depth": r["image"]["depth_file"]} if "depth_file" in r["image"] else {}), "reason": r["error"]}
            for r in self.records.values() if "error" in r]
        return sorted(out, key=lambda e: (e["image_id"] is None, e["image_id"] or 0))

    def write_outputs(self) -> tuple[int, int]:
        """Write ``results.json``, ``images.json`` and ``errors.json`` (atomically) from everything recorded;
        returns (detections, images)."""
        self._open().flush()
        ok = sorted((r for r in self.records.values() if "results" in r), key=lambda r: r["image"]["id"])
        results = [d for r in ok for d in r["results"]]
        write_json_atomic(self.out / "results.json", results)
        write_json_atomic(self.out / "images.json", [r["image"] for r in ok], indent=1)
        write_json_atomic(self.out / "errors.json", self.errors, indent=1)
        return len(results), len(ok)

    def close(self) -> None:
        """Close the progress file."""
        if self._file is not None and not self._file.closed:
            self._file.close()
