"""calibnet-eval: a checkpoint and its ONNX export on a synthetic data set, the summary, the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from calibnet.cli import eval as cli
from calibnet.data import write_synthetic_dataset

TINY_YAML = """\
MODEL:
  RESNETS:
    DEPTH: 18
INPUT:
  MIN_SIZE_TEST: 96
  MAX_SIZE_TEST: 128
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An R18 checkpoint with a 96/128 test resize, its static 96x128 ONNX export and 3 synthetic scenes."""
    pytest.importorskip("torch")
    import calibnet
    from calibnet.export import export_onnx

    d = tmp_path_factory.mktemp("eval_cli")
    (d / "tiny.yaml").write_text(TINY_YAML)
    model = calibnet.build_model(calibnet.get_config(d / "tiny.yaml"), quiet=True)
    calibnet.save_checkpoint(model, d / "tiny.pth")
    export_onnx(model, d / "tiny.onnx", height=96, width=128, simplify=False)
    spec = write_synthetic_dataset(d / "SYN", 3, seed=4, height=96, width=128)
    return d, spec


@pytest.mark.slow
def test_checkpoint_vs_onnx_on_a_custom_json(tiny, capsys):
    d, spec = tiny
    out = d / "out"
    rc = cli.main([str(d / "tiny.pth"), str(d / "tiny.onnx"), "--config", str(d / "tiny.yaml"), "--json",
                   str(spec.json_file), "--image-root", str(spec.image_root), "--out", str(out), "--threads", "2",
                   "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "AP50" in table and "AP70" in table and "SYN" in table and "Δ" in table
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["model"]: r for r in summary["results"]}
    assert set(rows) == {"tiny_pth", "tiny_onnx"}
    assert rows["tiny_pth"]["backend"] == "torch" and rows["tiny_onnx"]["backend"] == "onnxruntime"
    for r in rows.values():
        assert r["images"] == 3 and r["dataset"] == "SYN"
        assert all(np.isfinite(r[k]) for k in ("AP", "AP50", "AP70"))
    # the export reproduces the checkpoint: same detections, masks and scores per image
    torch_res = json.loads(Path(rows["tiny_pth"]["results_json"]).read_text())
    onnx_res = json.loads(Path(rows["tiny_onnx"]["results_json"]).read_text())
    assert len(torch_res) == len(onnx_res) > 0
    assert all(r["segmentation"]["size"] == [96, 128] for r in onnx_res)
    for a, b in zip(sorted(torch_res, key=lambda r: (r["image_id"], -r["score"])),
                    sorted(onnx_res, key=lambda r: (r["image_id"], -r["score"]))):
        assert a["image_id"] == b["image_id"] and a["score"] == pytest.approx(b["score"], abs=1e-3)
        ma, mb = (mask_utils.decode({**x["segmentation"], "counts": x["segmentation"]["counts"].encode()})
                  for x in (a, b))
        assert (ma != mb).mean() < 0.01


@pytest.mark.slow
def test_registered_dataset_names_and_official_depth_rule(tiny, tmp_path, capsys):
    d, spec = tiny
    root = tmp_path / "root"
    (root / "DSIS").mkdir(parents=True)
    for sub in ("RGB", "depth"):
        (root / "DSIS" / sub).symlink_to(getattr(spec, "image_root" if sub == "RGB" else "depth_root"))
    (root / "DSIS" / "DSIS.json").write_text(spec.json_file.read_text())
    rc = cli.main([str(d / "tiny.onnx"), "--dataset", "dsis_test", "--data-root", str(root), "--out",
                   str(tmp_path / "o"), "--limit", "2", "--no-progress"])
    assert rc == 0
    row = json.loads((tmp_path / "o" / "summary.json").read_text())["results"][0]
    assert row["dataset"] == "dsis_test" and row["images"] == 2
    assert (tmp_path / "o" / "tiny_onnx" / "dsis_test_results.json").is_file()
    capsys.readouterr()
    # --json with an RGB folder: the depth folder follows the official RGB -> depth rule
    assert cli.main([str(d / "tiny.onnx"), "--json", str(spec.json_file), "--image-root", str(spec.image_root),
                     "--out", str(tmp_path / "o2"), "--limit", "1", "--no-progress"]) == 0


@pytest.mark.slow
def test_user_errors_are_one_line(tiny, tmp_path, capsys):
    d, spec = tiny
    cases = [
        ([str(tmp_path / "none.onnx"), "--json", str(spec.json_file), "--image-root", str(spec.image_root)],
         "none.onnx"),
        ([str(d / "tiny.onnx"), "--dataset", "nope", "--data-root", str(tmp_path)], "known: come15k_train"),
        ([str(d / "tiny.onnx"), "--dataset", "sip_test", "--data-root", str(tmp_path)], "SIP"),
        ([str(d / "tiny.onnx"), "--json", str(spec.json_file), "--image-root", str(tmp_path)], "--depth-root"),
        ([str(d / "tiny.onnx")], "--dataset"),
        ([str(d / "tiny.yaml"), "--json", str(spec.json_file), "--image-root", str(spec.image_root)],
         "unknown model type"),
    ]
    for argv, needle in cases:
        assert cli.main(argv + ["--out", str(tmp_path / "x"), "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)


def test_max_drop_fails_the_command(tmp_path, monkeypatch, capsys):
    """--max-drop: exit 1 naming the model and data set when a model loses more AP than allowed."""
    spec = write_synthetic_dataset(tmp_path / "S", 1, seed=0, height=48, width=64)
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"")
    aps = {"a_onnx": 50.0, "b_onnx": 48.0}

    class _Rt:
        backend = type("B", (), {"name": "fake"})()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(cli, "open_runtime", lambda path, options: _Rt())

    def fake_run_eval(runtime, spec, out_dir=None, progress=True, limit=None):
        ap = aps[Path(out_dir).name]
        return {"AP": ap, "AP50": ap, "AP70": ap, "images": 1, "seconds": 0.1, "ms_per_image": 100.0,
                "results_json": None}

    monkeypatch.setattr(cli, "run_eval", fake_run_eval)
    argv = [str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "--json", str(spec.json_file), "--image-root",
            str(spec.image_root), "--out", str(tmp_path / "o"), "--no-progress"]
    assert cli.main(argv + ["--max-drop", "1.0"]) == 1
    err = capsys.readouterr().err
    assert "b_onnx on S" in err and "2.00 below" in err
    assert cli.main(argv + ["--max-drop", "3.0"]) == 0
    assert "-2.0" in capsys.readouterr().out  # the Δ row


def test_help_has_examples(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "calibnet-eval calibnet.onnx --dataset" in out and "--max-drop" in out


def test_depth_corruption_runs_the_robustness_study(tmp_path, monkeypatch, capsys):
    """--depth-corruption / --severity: the study's files per model and data set (a stand-in model whose only
    cue is depth); bad names and severities are one-line errors."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from stream_fakes import SleepBackend

    from calibnet.runtime import Runtime

    spec = write_synthetic_dataset(tmp_path / "S", 3, seed=2, height=64, width=96, image_format="png")
    (tmp_path / "m.xml").write_text("<net/>")  # never opened: the stand-in runs instead
    monkeypatch.setattr(cli, "open_runtime", lambda path, options: Runtime(SleepBackend(0.0)))
    argv = [str(tmp_path / "m.xml"), "--json", str(spec.json_file), "--image-root", str(spec.image_root),
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert cli.main(argv + ["--depth-corruption", "holes,missing", "--severity", "1,5"]) == 0
    out = capsys.readouterr().out
    assert "| holes |" in out and "% of clean" in out
    folder = tmp_path / "o" / "m_xml" / "S"
    rep = json.loads((folder / "depth_robustness.json").read_text())
    assert [(r["corruption"], r["severity"]) for r in rep["rows"]] == [("holes", 1), ("holes", 5), ("missing", 1),
                                                                      ("missing", 5)]
    assert (folder / "depth_robustness.md").is_file() and (folder / "depth_health_frames.json").is_file()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["depth_robustness"][0]["summary"] == rep["summary"]
    for extra, message in ((["--depth-corruption", "fog"], "--depth-corruption: unknown depth corruption fog"),
                           (["--depth-corruption", "all", "--severity", "2,7"], "--severity: severities must"),
                           (["--depth-corruption", "all", "--severity", "x"], "--severity wants")):
        assert cli.main(argv + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
