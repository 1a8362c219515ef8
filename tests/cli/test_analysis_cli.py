"""calibnet-analyze end to end on data sets written by calibnet.data.write_synthetic_dataset: the JSON, the
markdown, the figures, two data sets side by side, --results, and the run without matplotlib or torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import BLOCK_TORCH

from calibnet.analysis import analyze_dataset, write_saliency_maps
from calibnet.analysis.plots import plotting_available
from calibnet.cli.analyze import main
from calibnet.data import register_dataset, write_synthetic_dataset


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    a = write_synthetic_dataset(root / "SYNA", 10, seed=1, height=96, width=144, name="syna")
    b = write_synthetic_dataset(root / "SYNB", 8, seed=2, height=96, width=128, name="synb",
                                n_salient=(2, 4))
    dropped = write_saliency_maps(a, root / "SYNA" / "GT", drop_every=3)
    register_dataset("syna_test", "SYNA/RGB", "SYNA/annotations.json", "SYNA/depth")
    return root, a, b, dropped


def test_report_and_figures_end_to_end(two_sets, tmp_path, capsys):
    root, a, b, dropped = two_sets
    out = tmp_path / "report"
    rc = main(["--dataset", "syna_test", "--data-root", str(root), "--json", str(b.json_file), "--name", "synb",
               "--saliency-dir", f"syna_test={root / 'SYNA' / 'GT'}", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "syna_test" in printed.out and "synb" in printed.out
    assert "synb: no salient-object maps" in printed.err
    doc = json.loads((out / "analysis.json").read_text())
    names = [d["name"] for d in doc["datasets"]]
    assert names == ["syna_test", "synb"]
    da, db = doc["datasets"]
    # the CLI's numbers are the library's
    lib = analyze_dataset(a, root / "SYNA" / "GT", progress=False).summary
    assert da["instances_per_image"] == lib["instances_per_image"] and da["instance_size"] == lib["instance_size"]
    assert da["objects_instances"]["matching_curve"] == lib["objects_instances"]["matching_curve"]
    ann = json.loads(a.json_file.read_text())["annotations"]
    assert da["instances"] == len(ann) and len(da["per_image"]) == 10
    # the images whose last instance was left out of the salient map are the Fig. 7 list
    assert {w["image_id"] for w in da["worst"]["instances_leave_salient_region"]} == set(dropped)
    assert da["objects_instances"]["instances_entirely_outside"] == len(dropped)
    assert db["objects_instances"]["skipped"] and db["depth_saliency"]["salient_reference"] == "union of instances"
    # the summary is the per-image rows', and the depth list starts at the lowest depth IoU
    ious = [r["depth_iou"] for r in da["per_image"]]
    assert da["depth_saliency"]["fraction_iou_ge_0.5"] == sum(v >= 0.5 for v in ious) / len(ious)
    assert da["worst"]["depth_disagrees"][0]["depth_iou"] == min(ious)
    md = (out / "summary.md").read_text()
    assert "| syna_test |" in md and "| synb |" in md and "Fig. 7" in md
    if plotting_available():
        for f in ("instances_per_image.png", "center_bias.png", "instance_size.png", "objects_instances.png",
                  "depth_saliency.png"):
            assert (out / f).stat().st_size > 5000, f
            assert f"]({f})" in md


def test_results_compare_predictions_with_ground_truth(two_sets, tmp_path):
    root, a, _, _ = two_sets
    coco = json.loads(a.json_file.read_text())
    results = [{"image_id": x["image_id"], "category_id": 1, "segmentation": x["segmentation"], "score": 0.8}
               for x in coco["annotations"]]
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    out = tmp_path / "pred"
    rc = main(["--json", str(a.json_file), "--saliency-dir", str(root / "SYNA" / "GT"), "--results", str(res_path),
               "--out", str(out), "--no-progress", "--no-per-image"])
    assert rc == 0
    d = json.loads((out / "analysis.json").read_text())["datasets"][0]
    p = d["predictions"]
    assert p["AP"]["AP"] == pytest.approx(100.0) and p["comparison"]["count_exact"] == 1.0
    assert p["statistics"]["instance_size"] == d["instance_size"]
    assert sum(v["num_gt"] for v in p["AP_by_size"].values()) >= d["instances"]
    assert "per_image" not in d
    if plotting_available():
        assert (out / "predictions.png").is_file()


def test_user_errors_are_one_line(two_sets, tmp_path, capsys):
    root, a, _, _ = two_sets
    assert main(["--json", str(a.json_file), "--saliency-dir", "x", "y", "--out", str(tmp_path)]) == 2
    assert "2 value(s) for 1 data set" in capsys.readouterr().err
    assert main(["--json", str(a.json_file), "--results", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "results file not found" in capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 2


def test_runs_without_matplotlib_and_torch(two_sets, tmp_path):
    _, a, _, _ = two_sets
    block = BLOCK_TORCH.replace("name == 'torch' or name.startswith('torch.')",
                                "name.split('.')[0] in ('torch', 'matplotlib')")
    code = block + ("from calibnet.cli.analyze import main\n"
                    f"rc = main(['--json', {str(a.json_file)!r}, '--out', {str(tmp_path / 'o')!r}, '--no-progress'])\n"
                    "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
                    "print('rc', rc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "rc 0" in res.stdout and "matplotlib is not installed" in res.stderr
    assert (tmp_path / "o" / "analysis.json").is_file() and not list((tmp_path / "o").glob("*.png"))
    assert "matplotlib is not installed" in (tmp_path / "o" / "summary.md").read_text()
