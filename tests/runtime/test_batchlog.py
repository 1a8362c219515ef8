"""The resume log of batch runs (runtime/apps/batchlog.py) under a killed process: a torn last line is dropped, never
fatal; the surviving records replace the old file atomically; temp files of a killed write are removed. The
SIGKILL runs themselves are in tests/cli/test_batch_runs.py."""

from __future__ import annotations

import json
import os

import pytest

from calibnet.runtime.apps import batchlog
from calibnet.runtime.apps.batchlog import PROGRESS_JSONL, BatchLog


def _record(key: str) -> dict:
    return {"key": key, "image": {"id": int(key), "file_name": f"{key}.jpg"}, "results": [{"score": 0.5}]}


def _torn_log(out):
    out.mkdir()
    whole = "".join(json.dumps(_record(k)) + "\n" for k in ("1", "2"))
    (out / PROGRESS_JSONL).write_text(whole + json.dumps(_record("3"))[:25])  # killed mid-line
    return whole


def test_a_torn_last_line_is_dropped_and_the_run_goes_on(tmp_path):
    out = tmp_path / "out"
    _torn_log(out)
    log = BatchLog(out, resume=True)
    assert log.done("1") and log.done("2") and not log.done("3")
    log.add_result("3", *list(_record("3").values())[1:])
    assert log.write_outputs() == (3, 3)
    log.close()
    lines = (out / PROGRESS_JSONL).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["1", "2", "3"]  # every line whole again
    assert [im["id"] for im in json.loads((out / "images.json").read_text())] == [1, 2, 3]


def test_the_surviving_records_replace_the_log_atomically(tmp_path, monkeypatch):
    """Killed while the resumed run rewrites the log (here: before the rename): the old log is intact."""
    out = tmp_path / "out"
    whole = _torn_log(out)
    before = (out / PROGRESS_JSONL).read_text()

    def killed(*args):
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(batchlog.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        BatchLog(out, resume=True).add_result("4", *list(_record("4").values())[1:])
    assert (out / PROGRESS_JSONL).read_text() == before and before.startswith(whole)
    monkeypatch.undo()
    stale = list(out.glob(f".{PROGRESS_JSONL}.*.tmp"))
    assert len(stale) == 1  # what the killed run left
    (out / f".results.json.{os.getpid() + 1}.tmp").write_text("[")
    log = BatchLog(out, resume=True)
    log.write_outputs()
    log.close()
    assert not list(out.glob(".*.tmp"))  # removed by the next run
    assert json.loads((out / "results.json").read_text()) == [{"score": 0.5}] * 2
