"""calibnet-infer batch runs that never lose work (progress.jsonl, atomic results, errors.json, SIGTERM and
--resume, --stream/--track), hostile input files, and one-line errors for bad model files in every CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import wait_for_lines, write_pairs
from hostile_files import hdr_header, npy_header, png_bomb, tiff_header
from PIL import Image

from calibnet.cli.infer import main
from calibnet.runtime.core.filecheck import file_problem

torch = pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet.data.synthetic import make_scene  # noqa: E402
from calibnet.export import export_onnx  # noqa: E402
from calibnet.training.recipes import RECIPES  # noqa: E402

HW = (120, 180)  # frames resize to the small model's 128x192 input


def small_config():
    """The synthetic-r18 recipe's model: R18, 1-layer encoders, 10 kernels, 128x192 input."""
    return calibnet.get_config("r18").replace(**RECIPES["synthetic-r18"].overrides)


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    return export_onnx(calibnet.build_model(small_config(), quiet=True), d / "small.onnx", height=128, width=192)


def infer(model, rgb, depth, out, *extra):
    return main([str(model), "--rgb-dir", str(rgb), "--depth-dir", str(depth), "--out", str(out), "--no-overlay",
                 "--threads", "1", *extra])


def _read(out, name):
    return json.loads((out / name).read_text())


def test_a_corrupt_pair_is_recorded_and_the_run_goes_on(small_onnx, tmp_path, capsys):
    rgb, depth = write_pairs(tmp_path / "data", 3, hw=HW)
    (depth / "02.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    assert infer(small_onnx, rgb, depth, out) == 1  # not every pair succeeded
    results, images, errors = _read(out, "results.json"), _read(out, "images.json"), _read(out, "errors.json")
    assert [im["id"] for im in images] == [1, 2] and {r["image_id"] for r in results} <= {1, 2} and results
    assert len(errors) == 1 and errors[0]["image_id"] == 3 and errors[0]["file"] == "02.jpg"
    assert "02.png" in errors[0]["reason"] and "\n" not in errors[0]["reason"]
    assert "02.png" in capsys.readouterr().err
    assert len((out / "progress.jsonl").read_text().splitlines()) == 3
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files
    assert infer(small_onnx, rgb, depth, tmp_path / "ff", "--fail-fast") == 1


@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run(small_onnx, tmp_path):
    rgb, depth = write_pairs(tmp_path / "data", 20, seed=100, hw=HW)
    full = tmp_path / "full"
    assert infer(small_onnx, rgb, depth, full) == 0
    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "calibnet.cli.infer", str(small_onnx), "--rgb-dir", str(rgb), "--depth-dir",
           str(depth), "--out", str(part), "--no-overlay", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_lines(proc, part / "progress.jsonl", 4, timeout=120)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    done = _read(part, "images.json")
    assert 4 <= len(done) < 20  # stopped in the middle, finished work written
    assert infer(small_onnx, rgb, depth, part, "--resume") == 0
    for name in ("results.json", "images.json", "errors.json"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name


def _sigkill_runs(cmd, progress, n, targets, seed):
    """Run ``cmd`` once per target: wait until ``progress`` holds ``target`` lines, a random delay more (at most 50 ms
    when the target is the last input: in the final writes), then SIGKILL; returns how many runs the kill ended."""
    import random
    import time

    rng = random.Random(seed)
    killed = 0
    for target in targets:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_lines(proc, progress, target, timeout=120)
        time.sleep(rng.uniform(0.0, 0.05 if target >= n else 0.4))
        proc.kill()
        killed += proc.wait(timeout=60) == -signal.SIGKILL
    return killed


def _same_outputs_and_log(part, full, keys, failed=()):
    for name in ("results.json", "images.json", "errors.json"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name
    records = [json.loads(line) for line in (part / "progress.jsonl").read_text().splitlines()]  # whole lines
    finished = sorted(r["key"] for r in records if "results" in r)  # each finished input once (failed: retried)
    assert finished == sorted(k for k in keys if k not in failed), finished
    assert {r["key"] for r in records} == set(keys) and not list(part.glob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_at_ten_random_moments_then_resume_equals_an_uninterrupted_run(small_onnx, tmp_path):
    """calibnet-infer killed with SIGKILL ten times (a seeded draw: after a random number of finished images and a
    random delay, the last two just as the last image is recorded, i.e. in the final writes), each time resumed;
    the last --resume run ends with results, images and errors byte-identical to an uninterrupted run, and a
    progress log of whole lines with every finished input once."""
    import random

    n = 16
    rgb, depth = write_pairs(tmp_path / "data", n, seed=300, hw=HW)
    (depth / "05.png").write_bytes(b"not a png")  # errors.json has an entry to compare as well
    full = tmp_path / "full"
    assert infer(small_onnx, rgb, depth, full) == 1
    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "calibnet.cli.infer", str(small_onnx), "--rgb-dir", str(rgb), "--depth-dir",
           str(depth), "--out", str(part), "--no-overlay", "--threads", "1", "--resume"]
    rng = random.Random(24)
    targets = sorted(rng.randint(0, n - 1) for _ in range(8)) + [n, n]
    assert _sigkill_runs(cmd, part / "progress.jsonl", n, targets, seed=24) >= 8  # most kills landed mid-run
    assert infer(small_onnx, rgb, depth, part, "--resume") == 1
    _same_outputs_and_log(part, full, [f"{i:02d}.jpg" for i in range(n)], failed=["05.jpg"])


@pytest.mark.slow
def test_video_run_killed_with_sigkill_then_resumed_equals_an_uninterrupted_run(small_onnx, tmp_path):
    """The same for a video (+ depth folder) run: four SIGKILLs at seeded moments (the last in the final writes),
    then --resume: byte-identical results, images and errors."""
    n = 10
    write_video_pairs(tmp_path, [make_scene(400 + i, *HW) for i in range(n)])
    args = [str(small_onnx), "--video", str(tmp_path / "rgb.avi"), "--depth-dir", str(tmp_path / "d"),
            "--no-overlay", "--threads", "1"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*args, "--out", str(full)]) == 0
    cmd = [sys.executable, "-m", "calibnet.cli.infer", *args, "--out", str(part), "--resume"]
    assert _sigkill_runs(cmd, part / "progress.jsonl", n, [2, 5, 7, n], seed=10) >= 3
    assert main([*args, "--out", str(part), "--resume"]) == 0
    keys = [json.loads(line)["key"] for line in (full / "progress.jsonl").read_text().splitlines()]
    assert len(set(keys)) == n
    _same_outputs_and_log(part, full, keys)


def _hostile_folder(root):
    """One pair per kind of hostile file; depth maps are plain 8-bit PNGs unless the depth is the hostile part."""
    rgb, depth = root / "RGB", root / "depth"
    rgb.mkdir(parents=True)
    depth.mkdir()
    s = make_scene(7, *HW)

    def dep(name, arr=s.depth):
        cv2.imwrite(str(depth / f"{name}.png"), arr)

    (rgb / "zero.jpg").write_bytes(b"")
    dep("zero")
    cv2.imwrite(str(rgb / "ok.jpg"), s.rgb[:, :, ::-1])
    dep("ok")
    jpg = (rgb / "ok.jpg").read_bytes()
    (rgb / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    dep("truncated")
    cv2.imwrite(str(rgb / "png_named.png"), s.rgb[:, :, ::-1])
    (rgb / "png_named.png").rename(rgb / "wrongext.jpg")  # PNG bytes behind a .jpg name
    dep("wrongext")
    (rgb / "text.png").write_text("this is not an image")
    dep("text")
    Image.fromarray(s.rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(rgb / "paletted.png")
    dep("paletted")
    cv2.imwrite(str(rgb / "rgb16.png"), (s.rgb[:, :, ::-1].astype(np.uint16) * 257))
    dep("rgb16")
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(s.rgb, 1)))  # stored sideways, EXIF says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(rgb / "exif.jpg", exif=exif)
    dep("exif")
    Image.fromarray(np.full((8000, 8000, 3), 90, np.uint8)).save(rgb / "huge.jpg", quality=50)
    dep("huge")
    cv2.imwrite(str(rgb / "aspect.jpg"), s.rgb[:, :, ::-1])
    dep("aspect", cv2.resize(s.depth, (60, 120)))  # depth 120x60 for a 120x180 image
    cv2.imwrite(str(rgb / "depth16rgb.jpg"), s.rgb[:, :, ::-1])
    cv2.imwrite(str(depth / "depth16rgb.png"), np.repeat(s.depth[:, :, None].astype(np.uint16) * 257, 3, axis=2))
    cv2.imwrite(str(rgb / "depthzero.jpg"), s.rgb[:, :, ::-1])
    (depth / "depthzero.png").write_bytes(b"")
    (rgb / "pngbomb.png").write_bytes(png_bomb())  # 13000x13000 in ~170 KB
    dep("pngbomb")
    for stem, data in (("hdrbomb", hdr_header()), ("tifbomb", tiff_header())):  # headers claiming 30000x30000
        cv2.imwrite(str(rgb / f"{stem}.jpg"), s.rgb[:, :, ::-1])
        (depth / f"{stem}{'.png' if stem == 'hdrbomb' else '.tif'}").write_bytes(data)
    cv2.imwrite(str(rgb / "npybomb.jpg"), s.rgb[:, :, ::-1])
    (depth / "npybomb.npy").write_bytes(npy_header())  # promises 3.35 GiB
    return rgb, depth


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow notices the PNG bomb too
def test_every_hostile_file_gives_a_result_or_a_one_line_reason(small_onnx, tmp_path):
    rgb, depth = _hostile_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert infer(small_onnx, rgb, depth, out) == 1
    images = {im["file_name"]: im for im in _read(out, "images.json")}
    errors = {e["file"]: e["reason"] for e in _read(out, "errors.json")}
    names = {p.name for p in rgb.iterdir()}
    assert set(images) | set(errors) == names and not set(images) & set(errors)
    assert all("\n" not in r and len(r) < 500 for r in errors.values())
    bombs = {"pngbomb.png", "hdrbomb.jpg", "tifbomb.jpg", "npybomb.jpg"}
    assert set(errors) == {"zero.jpg", "truncated.jpg", "text.png", "huge.jpg", "depthzero.jpg"} | bombs
    assert "zero.jpg" in errors["zero.jpg"] and "text.png" in errors["text.png"]
    assert "depthzero.png" in errors["depthzero.jpg"] and "--max-pixels" in errors["huge.jpg"]
    for name in bombs:  # refused from the header, before decoding (the memory bound: tests/serving)
        assert "larger than the limit of 40.0 MP" in errors[name] and name.split(".")[0] in errors[name], errors[name]
    assert images["exif.jpg"]["height"] == HW[0] and images["exif.jpg"]["width"] == HW[1]  # upright, as detectron2
    assert images["paletted.png"]["width"] == HW[1] and images["rgb16.png"]["width"] == HW[1]
    assert any("sizes differ" in w for w in images["aspect.jpg"]["warnings"])
    assert "warnings" not in images["ok.jpg"]


def test_video_with_a_bad_depth_frame_goes_on(small_onnx, tmp_path):
    write_video_pairs(tmp_path, [make_scene(30 + i, *HW) for i in range(3)])
    (tmp_path / "d" / "1.png").write_bytes(b"broken")
    out = tmp_path / "v"
    assert main([str(small_onnx), "--video", str(tmp_path / "rgb.avi"), "--depth-dir", str(tmp_path / "d"),
                 "--out", str(out), "--threads", "1"]) == 1
    assert [im["frame_index"] for im in _read(out, "images.json")] == [0, 2]
    assert [e["image_id"] for e in _read(out, "errors.json")] == [2]
    assert (out / "overlay.avi").is_file()


def test_stream_and_track_modes_match_the_sequential_run(small_onnx, tmp_path, capsys):
    rgb, depth = write_pairs(tmp_path / "data", 6, seed=40, hw=HW)
    assert infer(small_onnx, rgb, depth, tmp_path / "seq") == 0
    assert infer(small_onnx, rgb, depth, tmp_path / "st", "--stream") == 0
    assert (tmp_path / "st" / "results.json").read_bytes() == (tmp_path / "seq" / "results.json").read_bytes()
    assert infer(small_onnx, rgb, depth, tmp_path / "tr", "--track") == 0
    report = capsys.readouterr().out
    assert "latency" in report and "frames/s" in report
    tracked = _read(tmp_path / "tr", "results.json")
    assert all("track_id" in r for r in tracked)
    plain = _read(tmp_path / "seq", "results.json")
    assert [{k: v for k, v in r.items() if k != "track_id"} for r in tracked] == plain


def _onnx_foreign(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])), path)


def test_bad_model_files_end_in_one_line_naming_the_file(small_onnx, tmp_path, capsys):
    rgb, depth = write_pairs(tmp_path / "data", 1, hw=HW)
    good = small_onnx.read_bytes()
    cases = {"random.onnx": np.random.default_rng(0).bytes(4096), "truncated.onnx": good[: len(good) // 2],
             "empty.onnx": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    _onnx_foreign(tmp_path / "foreign.onnx")
    for name in [*cases, "foreign.onnx"]:
        assert infer(tmp_path / name, rgb, depth, tmp_path / "o") == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0] and "Traceback" not in err[0], err
    infer(tmp_path / "foreign.onnx", rgb, depth, tmp_path / "o")
    err = capsys.readouterr().err
    assert "not a CalibNet model" in err or "no calibnet metadata" in err


def test_file_problem_reads_bytes_only(small_onnx, tmp_path):
    assert file_problem(small_onnx) is None
    (tmp_path / "r.onnx").write_bytes(np.random.default_rng(1).bytes(2000))
    assert "not an ONNX model" in file_problem(tmp_path / "r.onnx")
    good = small_onnx.read_bytes()
    (tmp_path / "t.onnx").write_bytes(good[:-1000])
    assert "truncated" in file_problem(tmp_path / "t.onnx")
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "c.pth")
    assert file_problem(tmp_path / "c.pth") is None
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in file_problem(tmp_path / "t.pth")
    (tmp_path / "x.pth").write_text("hello")
    assert "not a PyTorch checkpoint" in file_problem(tmp_path / "x.pth")
    assert file_problem(tmp_path / "missing.pth") == "file not found"
    (tmp_path / "e.engine").write_bytes(b"")
    assert "empty" in file_problem(tmp_path / "e.engine")
    assert os.path.isdir(tmp_path) and "folder" in file_problem(tmp_path)


@pytest.mark.slow
def test_bench_stream_and_soak_report(small_onnx, tmp_path, capsys):
    from calibnet.cli.bench import main as bench

    out = tmp_path / "b.json"
    assert bench(["--stream", "--soak", "40", "--soak-warmup", "10", "--model", str(small_onnx), "--stream-frames",
                  "8", "--iters", "1", "--threads", "1", "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["file_source"]["ratio"] > 0 and doc["live_source"]["all"]["processed"] == 8
    assert doc["live_source"]["latest"]["results"] == 8
    assert set(doc["soak"]) == {"predict", "stream-all", "stream-latest"}
    assert doc["soak"]["stream-latest"]["rss_end_mib"] > 0 and doc["soak"]["stream-all"]["threads_left"] == []
    assert "soak stream-latest" in capsys.readouterr().out


def test_bench_bad_model_is_one_line(tmp_path, capsys):
    from calibnet.cli.bench import main as bench

    (tmp_path / "r.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert bench(["--stream", "--model", str(tmp_path / "r.onnx"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "r.onnx" in err[0]


def test_every_cli_names_a_bad_model_or_checkpoint_file(tmp_path, capsys):
    """A truncated checkpoint / random-bytes model given to export, eval, bench and serve: one line naming the
    file, non-zero exit, no traceback."""
    from calibnet.cli.bench import main as bench
    from calibnet.cli.eval import main as evaluate
    from calibnet.cli.export import main as export
    from calibnet.cli.serve import main as serve
    from calibnet.data.synthetic import write_synthetic_dataset

    torch.save({"model": {"w": torch.zeros(1000)}}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "rand.onnx").write_bytes(np.random.default_rng(3).bytes(3000))
    write_synthetic_dataset(tmp_path / "ds", 1, height=64, width=96)
    ds = ["--json", str(tmp_path / "ds" / "annotations.json")]
    runs = {
        "export": lambda: export(["--config", "r18", "--weights", str(tmp_path / "trunc.pth"),
                                  "--onnx", str(tmp_path / "x.onnx")]),
        "eval .pth": lambda: evaluate([str(tmp_path / "trunc.pth"), "--config", "r18", *ds, "--out",
                                       str(tmp_path / "e"), "--no-progress"]),
        "eval .onnx": lambda: evaluate([str(tmp_path / "rand.onnx"), *ds, "--out", str(tmp_path / "e"),
                                        "--no-progress"]),
        "bench": lambda: bench(["--config", "r18", "--weights", str(tmp_path / "trunc.pth"), "--quiet"]),
        "serve": lambda: serve([str(tmp_path / "rand.onnx")]),
    }
    for what, fn in runs.items():
        code = fn()
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
        assert code not in (0, None), what
        assert len(err) == 1 and ("trunc.pth" in err[0] or "rand.onnx" in err[0]), (what, err)


@pytest.mark.slow
def test_tensorrt_flavoured_onnx_runs_on_the_torch_free_runtime(small_onnx, tmp_path):
    """The TensorRT-flavoured export embeds the plugin's CPU reference body, so the runtime (torch blocked)
    runs it on ONNX Runtime with the same result as the portable file; a bare plugin graph is refused with
    a reason."""
    import onnx
    from conftest import run_without_torch

    trt = export_onnx(calibnet.build_model(small_config(), quiet=True), tmp_path / "trt.onnx", flavor="tensorrt",
                      height=128, width=192)
    proto = onnx.load(str(trt))
    assert [f.name for f in proto.functions] == ["MultiscaleDeformableAttnPlugin_TRT"]
    del proto.functions[:]
    onnx.save(proto, tmp_path / "bare.onnx")
    s = make_scene(5, *HW)
    np.save(tmp_path / "rgb.npy", s.rgb)
    np.save(tmp_path / "depth.npy", s.depth)
    code = f"""
import numpy as np
from calibnet.runtime import Runtime, BackendUnavailable
rgb, depth = np.load({str(tmp_path / 'rgb.npy')!r}), np.load({str(tmp_path / 'depth.npy')!r})
a = Runtime.open({str(small_onnx)!r}, threads=1).predict(rgb, depth)
b = Runtime.open({str(trt)!r}, threads=1).predict(rgb, depth)
assert len(a) == len(b) and np.array_equal(a.masks, b.masks), (len(a), len(b))
assert np.allclose(a.scores, b.scores, atol=1e-5)
try:
    Runtime.open({str(tmp_path / 'bare.onnx')!r})
except BackendUnavailable as exc:
    assert "reference body" in str(exc)
else:
    raise AssertionError("bare plugin graph opened")
assert "torch" not in sys.modules
print("ok", len(a))
"""
    r = run_without_torch(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def write_video_pairs(folder, frames):
    """``folder/rgb.avi`` (MJPG) of the frames' colour and ``folder/d/<i>.png`` of their depth."""
    vw = cv2.VideoWriter(str(folder / "rgb.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (HW[1], HW[0]))
    for f in frames:
        vw.write(f.rgb[:, :, ::-1].copy())
    vw.release()
    (folder / "d").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / "d" / f"{i}.png"), f.depth)


def test_depth_health_is_in_results_and_images_json(small_onnx, tmp_path):
    rgb, depth = write_pairs(tmp_path / "data", 3, hw=HW)
    for name, rows in (("01.png", slice(0, HW[0] // 2)), ("02.png", slice(None))):  # half, then all invalid
        d = cv2.imread(str(depth / name), cv2.IMREAD_UNCHANGED)
        d[rows] = 0
        cv2.imwrite(str(depth / name), d)
    out = tmp_path / "out"
    assert infer(small_onnx, rgb, depth, out) == 0
    images = _read(out, "images.json")
    health = [im["depth_health"] for im in images]
    assert [h["invalid_share"] for h in health] == [0.0, 0.5, 1.0]
    assert [h["verdict"] for h in health] == ["ok", "unusable", "unusable"]  # the default rule: unusable from 16 %
    assert all(len(h["depth_trust"]) == 3 and all(0.0 <= t <= 1.0 for t in h["depth_trust"]) for h in health)
    results = _read(out, "results.json")
    assert results and all(r["depth_health"] == health[r["image_id"] - 1] for r in results)
    assert all(r["instance_depth"] is None or 0.0 <= r["instance_depth"] <= 255.0 for r in results)
