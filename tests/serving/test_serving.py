"""calibnet.serving: the wire protocol, calibnet-serve (PyTriton) under concurrent HTTP/gRPC clients, a generated
Triton repository loaded by the bundled tritonserver, and Ray batch jobs (resumable) against calibnet-infer.

The server and Ray tests are slow (a tiny R18 export, a Triton server, a local Ray cluster). They skip, saying
why, when nvidia-pytriton / tritonclient / ray are not installed (``./run`` installs them: calibnet[serving] and
``pip install --no-deps nvidia-pytriton==0.7.0``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for_lines, write_pairs
from hostile_files import hdr_header, npy_header, png_bomb, tiff_header

from calibnet.runtime.core.depth import DepthFormat
from calibnet.runtime.core.depth_health import DepthHealth
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.postprocess import masks_to_boxes
from calibnet.runtime.core.prediction import Prediction
from calibnet.serving.protocol import decode_request, encode_prediction, prediction_from_outputs

TINY_YAML = """\
MODEL:
  RESNETS:
    DEPTH: 18
  CALIBNET:
    ENCODER:
      NUM_LAYERS: 1
    ENCODER_DEPTH:
      NUM_LAYERS: 1
    DECODER:
      NUM_KERNELS: 10
INPUT:
  MIN_SIZE_TEST: 64
  MAX_SIZE_TEST: 96
"""


def _need(module: str, why: str):
    return pytest.importorskip(module, reason=f"{module} is not installed ({why}; ./run installs it)")


def _need_stub_env() -> None:
    """The Python-backend stub's environment (calibnet.serving.stub_env: made once with pip, numpy<2)."""
    from calibnet.serving.stub_env import stub_python_env

    try:
        stub_python_env()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot make the Triton Python-backend stub's environment (pip install numpy<2 into "
                    f"~/.cache/calibnet): {exc}")


# ---------------------------------------------------------------- protocol (fast)


def test_prediction_survives_the_wire():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 20, 30)) > 0.6
    masks[2] = False
    pred = Prediction(masks=masks, scores=np.array([0.9, 0.5, 0.1], np.float32), boxes=masks_to_boxes(masks),
                      depth_trust=np.array([0.7, 0.8, 0.9], np.float32), kernel_index=np.arange(3),
                      instance_depth=np.array([30.0, 120.5, np.nan], np.float32),
                      depth_health=DepthHealth(0.125, (0.7, 0.8, 0.9), "degraded"))
    out = encode_prediction(pred)
    assert out["masks_rle"].shape == (1, 3) and out["scores"].dtype == np.float32 and out["boxes"].shape == (1, 3, 4)
    assert json.loads(out["depth_health"][0, 0])["verdict"] == "degraded"
    back = prediction_from_outputs(out)
    assert back.depth_health == pred.depth_health
    np.testing.assert_array_equal(back.instance_depth, pred.instance_depth)
    np.testing.assert_array_equal(back.masks, masks)
    np.testing.assert_array_equal(back.scores, pred.scores)
    np.testing.assert_array_equal(back.boxes, pred.boxes)
    assert [r["counts"] for r in back.rle()] == [r["counts"] for r in pred.rle()]
    empty = prediction_from_outputs(encode_prediction(Prediction(np.zeros((0, 20, 30), bool), np.zeros(0, np.float32),
                                                                 np.zeros((0, 4), np.float32), pred.depth_trust,
                                                                 np.zeros(0, np.int64))), image_hw=(20, 30))
    assert len(empty) == 0 and empty.image_hw == (20, 30)


def test_requests_are_decoded_or_refused_with_a_reason():
    rgb = np.zeros((1, 40, 50, 3), np.uint8)
    d16 = np.full((1, 40, 50), 1200, np.uint16)
    f = decode_request({"rgb": rgb, "depth_u16": d16}, {"depth_format": "metric", "depth_near": 300, "depth_far": 4000})
    assert f.rgb.shape == (40, 50, 3) and f.depth.dtype == np.uint16
    assert f.depth_format == DepthFormat("metric", 300.0, 4000.0)
    cases = [({"rgb": rgb, "depth": np.zeros((1, 30, 50), np.uint8)}, "depth is 30x50 but rgb is 40x50"),
             ({"depth": d16}, "exactly one RGB input"),
             ({"rgb": rgb, "rgb_encoded": np.array([[b"x"]], object), "depth": d16}, "got rgb, rgb_encoded"),
             ({"rgb": rgb, "depth_encoded": np.array([[b"not a png"]], object)}, "cannot decode"),
             ({"rgb": np.zeros((2, 40, 50, 3), np.uint8), "depth": d16[:, :, :]}, "one frame per request")]
    for inputs, message in cases:
        with pytest.raises(InputError, match=message):
            decode_request(inputs)
    with pytest.raises(InputError, match="bad depth parameters"):
        decode_request({"rgb": rgb, "depth_u16": d16}, {"depth_format": "sonar"})


def test_served_answers_carry_the_depth_health():
    """What calibnet-serve and the Triton Python backend answer (server.answer_requests, one dynamic batch) for a
    clean, a half-invalid and an all-invalid 16-bit depth map, read back as the client does."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from stream_fakes import SleepBackend

    from calibnet.runtime import Runtime
    from calibnet.runtime.core.limits import default_limits
    from calibnet.serving.protocol import refusal_of
    from calibnet.serving.server import answer_requests

    d16 = np.full((1, 64, 96), 1500, np.uint16)
    d16[0, 20:40, 30:60] = 600
    half, none = d16.copy(), np.zeros_like(d16)
    half[0, :32] = 0
    rgb = np.zeros((1, 64, 96, 3), np.uint8)
    requests = [({"rgb": rgb, "depth_u16": d}, None) for d in (d16, half, none)]
    with pytest.warns(UserWarning, match="no valid pixel"):
        answers = answer_requests(Runtime(SleepBackend(0.0)), requests, default_limits())
    assert [refusal_of(a) for a in answers] == ["", "", ""]
    back = [prediction_from_outputs(a, image_hw=(64, 96)) for a in answers]
    assert [b.depth_health.invalid_share for b in back] == [0.0, 0.5, 1.0]
    assert [b.depth_health.verdict for b in back] == ["ok", "unusable", "unusable"]
    assert back[0].depth_health.depth_trust == (1.0, 1.0, 1.0) and len(back[0]) == 1
    assert back[0].instance_depth[0] == 0.0  # the near box: the nearest end of the per-frame range (near-dark)


def test_serving_modules_import_without_torch():
    from conftest import run_without_torch

    res = run_without_torch(
        "import calibnet.serving as s\n"
        "from calibnet.serving import client, protocol, server, stub_env, triton_python, triton_repo\n"
        "assert callable(s.write_triton_repo) and 'torch' not in sys.modules\n"
        "print('ok')\n", timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_stub_environment_puts_this_libpython_first():
    from calibnet.serving.stub_env import libpython_dir, stub_process_env

    env = stub_process_env({"LD_LIBRARY_PATH": "/usr/lib:/x", "PATH": "/bin"}, python_env=Path("/env"))
    assert env["LD_LIBRARY_PATH"].split(":") == [libpython_dir(), "/usr/lib", "/x"]
    assert env["PATH"].startswith("/env/bin:")


def test_client_errors_hold_no_server_paths():
    """What PyTriton sends when something fails inside it: a formatted traceback. The client keeps one line and
    no path (calibnet's own servers send one line without paths in the ``error`` output)."""
    from calibnet.serving.client import _reason

    pytriton = ("Failed to process the request(s) for model 'calibnet_0_0', message: TritonModelException: Model "
                'execute error: Traceback (most recent call last):\n'
                '  File "/tmp/folderX/1/model.py", line 492, in execute\n'
                '  File "/srv/venv/lib/python3.11/site-packages/pytriton/proxy/data.py", line 707, in _copy_frames\n'
                "TypeError: memoryview: cannot cast view\n\nAt:\n  /tmp/folderX/1/model.py(501): execute\n")
    for message in (pytriton, "unexpected shape for input 'rgb' for model 'calibnet'"):
        reason = _reason(message)
        assert "\n" not in reason and "/tmp" not in reason and "/srv" not in reason and reason, reason
    assert _reason("unexpected shape for input 'rgb'") == "unexpected shape for input 'rgb'"


class _FakeTriton:
    """Stands in for tritonclient's client: raises each of ``failures`` in turn, then answers ``answer``."""

    def __init__(self, failures, answer):
        self.failures, self.answer, self.calls = list(failures), answer, 0

    def infer(self, *args, **kwargs):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self

    def as_numpy(self, name):
        return self.answer.get(name)

    def close(self):
        pass


def test_client_retries_a_shed_request_with_backoff_then_says_overloaded(monkeypatch):
    """Triton's queue-full and queue-timeout answers become ServerOverloaded ("server ... is overloaded ..., retry
    later"): the client sends the request again after waits doubling from backoff_s (each drawn between half and
    all of it), up to ``retries`` times; a refused, reset or closed connection is ServerUnreachable naming the
    server, at once, never retried."""
    _need("tritonclient.http", "tritonclient[http,grpc]")
    from tritonclient.utils import InferenceServerException

    from calibnet.serving import client as client_module
    from calibnet.serving.client import CalibnetClient, ServerOverloaded, ServerUnreachable

    rgb, depth = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    pred = Prediction(masks=np.ones((1, 8, 8), bool), scores=np.array([0.9], np.float32),
                      boxes=np.array([[0, 0, 8, 8]], np.float32), depth_trust=np.ones(3, np.float32),
                      kernel_index=np.zeros(1, np.int64))
    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    full = InferenceServerException("[request id: x] Exceeds maximum queue size")
    late = InferenceServerException("[request id: x] Request timeout expired")
    c = CalibnetClient("127.0.0.1:9", retries=3, backoff_s=0.2)
    c._client = fake = _FakeTriton([full, late], encode_prediction(pred))
    got = c.predict(rgb, depth)
    assert fake.calls == 3 and np.array_equal(got.scores, pred.scores)
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.4, waits

    waits.clear()
    c._client = fake = _FakeTriton([full] * 5, {})
    with pytest.raises(ServerOverloaded) as info:
        c.predict(rgb, depth)
    assert fake.calls == 4 and len(waits) == 3 and 0.4 <= waits[2] <= 0.8, waits
    msg = str(info.value)
    assert msg.startswith("server http://127.0.0.1:9 is overloaded") and "retry later" in msg, msg
    assert msg.endswith(f"(request {info.value.request_id})")
    c._client = _FakeTriton([late], {})
    c.retries = 0
    with pytest.raises(ServerOverloaded, match=r"waited past the server's timeout\), retry later"):
        c.predict(rgb, depth)

    for gone in (ConnectionRefusedError(111, "Connection refused"), TimeoutError("timed out"),
                 InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")):
        c.retries = 3
        c._client = fake = _FakeTriton([gone], {})
        with pytest.raises(ServerUnreachable, match=r"^server http://127\.0\.0\.1:9 unreachable"):
            c.predict(rgb, depth)
        assert fake.calls == 1


def test_config_names_are_escaped():
    """An ONNX output name cannot end its string in config.pbtxt and add fields (parsed back as one name)."""
    pytest.importorskip("tritonclient.grpc")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from calibnet.serving.triton_repo import pbtxt_string

    hostile = 'masks" } output [ { name: "x\\n\u00e9\n'
    cfg = text_format.Parse(f"name: {pbtxt_string(hostile)}", model_config_pb2.ModelConfig())
    assert cfg.name == hostile


# ---------------------------------------------------------------- shared set-up of the slow tests


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny R18 CalibNet (1-layer encoders, 10 kernels, test resize 64/96) exported with dynamic H/W and batch
    (up to 8), and a pool of synthetic frames: six 64x96 and two 80x96 (another wire size)."""
    pytest.importorskip("torch")
    from calibnet.cli.export import main as export_main
    from calibnet.data.synthetic import make_scene

    d = tmp_path_factory.mktemp("serving")
    (d / "tiny.yaml").write_text(TINY_YAML)
    path = d / "tiny.onnx"
    args = ["--config", str(d / "tiny.yaml"), "--onnx", str(path), "--height", "64", "--width", "96", "--dynamic",
            "--min-hw", "64x64", "--max-hw", "96x96", "--max-batch", "8", "--no-simplify"]
    if importlib.util.find_spec("tritonclient") is not None:  # the repository writer validates with it
        args += ["--triton-repo", str(d / "repo_py"), "--triton-variant", "python"]
    assert export_main(args) == 0
    frames = [(s.rgb, s.depth) for s in (make_scene(10 + i, 64 if i < 6 else 80, 96) for i in range(8))]
    return path, frames


def _same(pred: Prediction, ref: Prediction) -> None:
    assert len(pred) == len(ref)
    np.testing.assert_allclose(pred.scores, ref.scores, atol=1e-5)
    assert [r["counts"] for r in pred.rle()] == [r["counts"] for r in ref.rle()]
    np.testing.assert_array_equal(pred.boxes, ref.boxes)
    np.testing.assert_allclose(pred.depth_trust, ref.depth_trust, atol=1e-5)
    assert pred.depth_health.verdict == ref.depth_health.verdict
    assert pred.depth_health.invalid_share == pytest.approx(ref.depth_health.invalid_share, abs=1e-6)
    np.testing.assert_allclose(pred.instance_depth, ref.instance_depth)


def _references(path: Path, frames):
    from calibnet.runtime import Runtime

    rt = Runtime.open(path, threads=1)
    return [rt.predict(rgb, depth) for rgb, depth in frames]


def _malformed(client, frames):
    """Bad requests and the reason each must be answered with."""
    rgb, depth = frames[0]
    return [
        (lambda: client.predict(rgb, depth[:32]), "depth is 32x96 but rgb is 64x96"),
        (lambda: client.predict_encoded(b"garbage", b"\x89PNG broken"), "cannot decode"),
        (lambda: client.infer_raw({"rgb": rgb[None].astype(np.float32), "depth": depth[None]}), "expects 'UINT8'"),
        (lambda: client.infer_raw({"depth": depth[None]}), "exactly one RGB input"),
    ]


def _stop(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"server did not stop within {timeout:.0f} s after SIGTERM:\n{out[-3000:]}")
    return proc.returncode, out


# ---------------------------------------------------------------- hostile inputs (memory bound)

#: what a refusal may cost: peak-RSS growth of the probe process while it refuses every bomb (the smallest bomb
#: decodes to 169 MB), and tracemalloc's peak (numpy allocations, even pages never touched)
RSS_BOUND = 16 * 2**20
TRACED_BOUND = 8 * 2**20
#: the same for calibnet-serve, which also receives every request (a 3 MiB one among them): ~11 MiB measured
SERVER_RSS_BOUND = 64 * 2**20


def _bomb_folder(folder: Path) -> Path:
    write_pairs(folder, 1)
    for name, data in {"bomb.png": png_bomb(), "bomb.hdr": hdr_header(), "bomb.npy": npy_header(),
                       "bomb.tif": tiff_header()}.items():
        (folder / name).write_bytes(data)
    return folder


def test_hostile_inputs_are_refused_before_any_large_allocation(tiny, tmp_path):
    """A 13000x13000 PNG, a 30000x30000 HDR header, a 3.35 GiB .npy header, a 30000x30000 TIFF header and a 64 MP
    raw tensor, through calibnet-infer's source, the server's request decoding and the Ray job's map function, in a
    fresh process (tests/serving/hostile_probe.py): each refused from its header with the limit's reason, the
    process's peak RSS growing by less than RSS_BOUND; and a dynamic batch of 4 requests with one bomb answers the
    other 3."""
    path, _ = tiny
    res = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning",
                          str(Path(__file__).with_name("hostile_probe.py")), str(path), str(_bomb_folder(tmp_path))],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    counts = {"readers": 9, "infer": 4, "serve": 4, "ray": 4}
    for where, messages in report["refusals"].items():
        assert len(messages) == counts[where], (where, messages)
        for m in messages:
            assert "larger than the limit of 40.0 MP" in m and ("13000x13000" in m or "30000x30000" in m
                                                                 or "8000x8000" in m), (where, m)
    assert report["rss_peak_delta"] < RSS_BOUND, report["rss_peak_delta"]
    assert report["traced_peak"] < TRACED_BOUND, report["traced_peak"]
    batch = report["batch"]
    assert [bool(b["error"]) for b in batch] == [False, True, False, False]
    assert all(b["instances"] > 0 for i, b in enumerate(batch) if i != 1)
    refused = batch[1]["error"]
    assert "13000x13000" in refused and refused.endswith("(request bomb-2)") and "/" not in refused


# ---------------------------------------------------------------- calibnet-serve (PyTriton)


def _serve(model, *options, **popen):
    """calibnet-serve on free ports (one thread, its output in ``proc.stdout``): (process, HTTP port, gRPC port)."""
    http, grpc, metrics = _free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "calibnet.cli.serve", str(model), "--port", str(http),
                             "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--threads", "1", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return proc, http, grpc


@pytest.mark.slow
def test_calibnet_serve_under_concurrent_http_and_grpc_clients(tiny):
    _need("pytriton", "nvidia-pytriton, the Triton server calibnet-serve runs")
    _need("tritonclient.grpc", "tritonclient[http,grpc]")
    from calibnet.benchmarks.loadgen import run_load
    from calibnet.serving.client import CalibnetClient, ServingError

    _need_stub_env()
    path, frames = tiny
    proc, http, grpc = _serve(path, "--max-batch", "8")
    try:
        refs = _references(path, frames)
        with CalibnetClient(f"127.0.0.1:{http}") as c:
            c.wait_ready(180)
            bad_answers: list[tuple[str, str]] = []

            def send_bad() -> None:  # malformed requests while the four clients run (a client per thread)
                with CalibnetClient(f"grpc://127.0.0.1:{grpc}") as b:
                    for call, expected in _malformed(b, frames):
                        try:
                            call()
                            bad_answers.append(("no error", expected))
                        except ServingError as exc:
                            bad_answers.append((str(exc), expected))
                        time.sleep(0.3)

            bad = threading.Thread(target=send_bad)
            bad.start()
            report = run_load([f"127.0.0.1:{http}", f"grpc://127.0.0.1:{grpc}"], frames, clients=4, requests=25)
            bad.join()
            assert len(report.answers) == 100
            assert [a.error for a in report.answers if a.error] == []
            for a in report.answers:
                _same(a.prediction, refs[a.frame])
            assert len(bad_answers) == 4
            for got, expected in bad_answers:
                assert expected in got, (got, expected)
            # still serving, on both protocols
            assert c.is_ready()
            _same(c.predict(*frames[1]), refs[1])
        with CalibnetClient(f"grpc://127.0.0.1:{grpc}") as g:
            _same(g.predict(*frames[7]), refs[7])
    finally:
        rc, out = _stop(proc)
    assert rc == 0, out[-3000:]
    assert "calibnet-serve: stopped" in out
    sizes = [line for line in out.splitlines() if "calibnet-serve: stopping after" in line]
    assert sizes and "largest" in sizes[0], out[-2000:]
    largest = int(sizes[0].rsplit("largest ", 1)[1].rstrip(")"))
    assert largest > 1, sizes[0]  # the dynamic batcher put concurrent same-size frames together


def _status(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split(f"{key}:", 1)[1].split()[0]) * 1024


@pytest.mark.slow
def test_the_server_log_has_one_line_per_malformed_request(tiny):
    """Three malformed requests leave exactly three one-line entries and no traceback in the server's log, and a
    good request is answered after them; on a machine without a GPU, no CUDA/NVML line either."""
    _need("pytriton", "nvidia-pytriton, the Triton server calibnet-serve runs")
    _need("tritonclient.grpc", "tritonclient[http,grpc]")
    from calibnet.serving.client import CalibnetClient, ServingError

    _need_stub_env()
    path, frames = tiny
    proc, http, grpc = _serve(path, "--max-batch", "1",
                              env={k: v for k, v in os.environ.items() if k != "CALIBNET_TRACEBACK"})
    try:
        with CalibnetClient(f"127.0.0.1:{http}") as c:
            c.wait_ready(180)
            rgb, depth = frames[0]
            for call in (lambda: c.predict(rgb, depth[:32]), lambda: c.predict_encoded(b"garbage", b"\x89PNG broken"),
                         lambda: c.infer_raw({"depth": depth[None]})):
                with pytest.raises(ServingError):
                    call()
            assert c.predict(rgb, depth).image_hw == rgb.shape[:2]  # answered after the three
    finally:
        rc, out = _stop(proc)
    assert rc == 0, out[-3000:]
    entries = [line for line in out.splitlines() if "calibnet.serving" in line]
    assert len(entries) == 3 and all("request " in e for e in entries), out[-3000:]
    assert "Traceback" not in out
    if not Path("/dev/nvidiactl").exists():
        assert not re.search(r"NVML|CUDA|DCGM", out), out[-3000:]


@pytest.mark.slow
def test_calibnet_serve_refuses_hostile_requests_alone(tiny, tmp_path):
    """calibnet-serve --max-pixels 100000 --max-input-mb 2 (limits of 0.1 MP and 2 MiB, printed when it starts):
    bombs, an oversized raw tensor, an oversized encoded input and a request past its queue timeout are each
    refused with one line (no server path, a request id), the server's peak RSS growing by less than
    SERVER_RSS_BOUND meanwhile (the smallest bomb decodes to 169 MB); four concurrent requests that share one
    dynamic batch, one of them a decompression bomb: the other three are answered."""
    _need("pytriton", "nvidia-pytriton, the Triton server calibnet-serve runs")
    _need("tritonclient.grpc", "tritonclient[http,grpc]")
    from tritonclient.utils import InferenceServerException

    from calibnet.serving.client import CalibnetClient, ServingError

    _need_stub_env()
    path, frames = tiny
    data = _bomb_folder(tmp_path)
    good_rgb, good_depth = (data / "RGB" / "00.jpg").read_bytes(), (data / "depth" / "00.png").read_bytes()
    proc, http, grpc = _serve(path, "--max-batch", "4", "--batch-delay-us", "1000000", "--max-pixels", "100000",
                              "--max-input-mb", "2", "--timeout-s", "20")
    try:
        ref = _references(path, frames[:1])[0]
        with CalibnetClient(f"127.0.0.1:{http}") as c, CalibnetClient(f"grpc://127.0.0.1:{grpc}") as g:
            c.wait_ready(180)
            _same(c.predict(*frames[0]), ref)  # warm: the measurement below sees only the refusals
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            rss0 = _status(proc.pid, "VmRSS")
            rgb, depth = frames[0]
            hostile = [
                (lambda: c.predict_encoded((data / "bomb.png").read_bytes(), good_depth), "13000x13000"),
                (lambda: g.predict_encoded(good_rgb, (data / "bomb.hdr").read_bytes()), "30000x30000"),
                (lambda: c.predict_encoded(good_rgb, (data / "bomb.npy").read_bytes()), "30000x30000"),
                (lambda: g.predict_encoded(good_rgb, (data / "bomb.tif").read_bytes()), "30000x30000"),
                (lambda: c.predict(np.zeros((400, 400, 3), np.uint8), np.zeros((400, 400), np.uint8)), "400x400"),
                (lambda: g.predict_encoded(np.random.default_rng(0).bytes(3 * 2**20), good_depth), "3.0 MiB"),
            ]
            for call, expected in hostile:
                with pytest.raises(ServingError) as info:
                    call()
                msg = str(info.value)
                assert expected in msg and "larger than the limit" in msg, msg
                assert "\n" not in msg and "/" not in msg and f"(request {info.value.request_id})" in msg, msg
            growth = _status(proc.pid, "VmHWM") - rss0
            assert growth < SERVER_RSS_BOUND, growth

            base = f"http://127.0.0.1:{http}/v2"
            for method, url in (("GET", "/models/calibnet/config"), ("POST", "/repository/index"),
                                ("POST", "/repository/models/calibnet/unload")):  # need PyTriton's token
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(urllib.request.Request(base + url, b"{}" if method == "POST" else None,
                                                                  method=method), timeout=30)
                assert refused.value.code == 403
            for url in ("", "/models/calibnet"):  # what any client may read: no server path in it
                text = urllib.request.urlopen(base + url, timeout=30).read().decode()
                assert str(Path.home()) not in text and "/tmp" not in text and str(path.parent) not in text, text

            tensors = [c._input("rgb", rgb[None], "UINT8"), c._input("depth", depth[None], "UINT8")]
            with pytest.raises(InferenceServerException, match="(?i)timeout"):  # 1 ms in a queue that waits 1 s
                c._client.infer("calibnet", tensors, timeout=1000)

            results: dict[int, object] = {}

            def send(i: int) -> None:
                with CalibnetClient(f"127.0.0.1:{http}") as one:
                    try:
                        rgb_bytes = (data / "bomb.png").read_bytes() if i == 1 else good_rgb
                        results[i] = one.predict_encoded(rgb_bytes, good_depth, image_hw=ref.image_hw)
                    except ServingError as exc:
                        results[i] = exc

            threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert isinstance(results[1], ServingError) and "13000x13000" in str(results[1])
            answered = [results[i] for i in (0, 2, 3)]
            assert all(not isinstance(r, Exception) and len(r) > 0 for r in answered), answered
    finally:
        rc, out = _stop(proc)
    assert rc == 0, out[-3000:]
    sizes = [line for line in out.splitlines() if "calibnet-serve: stopping after" in line]
    assert sizes and sizes[0].rstrip(")").endswith("largest 4"), out[-2000:]  # the four shared one batch
    assert ("calibnet-serve: limits: 0.1 MP and 2 MiB per input; a request waits at most 20 s for the model, "
            "at most 16 wait") in out, out[-2000:]
    assert "Traceback" not in out


#: what an overload run may add to the server's process tree (calibnet-serve, tritonserver, its stub): requests
#: beyond the queue are refused before they are decoded, so only the bounded queue's frames are held
OVERLOAD_RSS_BOUND = 128 * 2**20


@pytest.mark.slow
def test_calibnet_serve_sheds_load_and_a_killed_server_fails_its_clients_fast(tiny):
    """calibnet-serve --max-batch 2 --max-queue 4 --timeout-s 5: open-loop load at 2x and 10x the rate a closed
    loop sustained (4 s each, HTTP and gRPC): every request answered with a result equal to the reference or an
    explicit "overloaded, retry later" (some at 10x), none unreachable or hanging, the server tree's RSS within
    OVERLOAD_RSS_BOUND of its idle size, and the server healthy afterwards. Then calibnet-serve is killed with
    SIGKILL under an HTTP and a gRPC client: each gets a ServingError naming the server within twice its timeout."""
    _need("pytriton", "nvidia-pytriton, the Triton server calibnet-serve runs")
    _need("tritonclient.grpc", "tritonclient[http,grpc]")
    from calibnet.benchmarks.loadgen import run_load, run_overload, tree_rss
    from calibnet.serving.client import CalibnetClient, ServerOverloaded, ServerUnreachable, ServingError

    _need_stub_env()
    path, frames = tiny
    proc, http, grpc = _serve(path, "--max-batch", "2", "--max-queue", "4", "--timeout-s", "5",
                              start_new_session=True)
    urls = [f"127.0.0.1:{http}", f"grpc://127.0.0.1:{grpc}"]
    try:
        refs = _references(path, frames)
        with CalibnetClient(urls[0]) as c:
            c.wait_ready(180)
            _same(c.predict(*frames[0]), refs[0])
            idle = tree_rss(proc.pid)
            closed = run_load(urls, frames, clients=2, requests=4)
            assert [a.error for a in closed.answers if a.error] == []
            phases = run_overload(urls, frames, closed.throughput, (2, 10), duration_s=4, server_pid=proc.pid)
            for phase in phases:
                kinds = phase.report.kinds()
                print(phase.summary(), f"(idle {idle / 2**20:.0f} MiB)")
                assert len(phase.report.answers) == max(1, round(phase.rate * 4))  # every request answered
                assert kinds["unreachable"] == kinds["refused"] == 0, phase.summary()
                assert all("retry later" in a.error for a in phase.report.answers if a.kind == "overloaded")
                for a in phase.report.answers:
                    if a.kind == "answered":
                        _same(a.prediction, refs[a.frame])
                assert phase.peak_rss - idle < OVERLOAD_RSS_BOUND, phase.summary()
            assert phases[1].report.kinds()["overloaded"] > 0, phases[1].summary()  # 10x: shed, not queued
            _same(c.predict(*frames[1]), refs[1])  # healthy afterwards

        timeout_s = 8.0
        failures: dict[str, tuple[ServingError, float]] = {}
        killed_at: list[float] = []

        def client_under_kill(url: str) -> None:
            with CalibnetClient(url, timeout_s=timeout_s) as k:
                try:
                    for i in range(10_000):
                        k.predict(*frames[i % len(frames)])
                except ServingError as exc:
                    failures[url] = (exc, time.monotonic() - killed_at[0])

        threads = [threading.Thread(target=client_under_kill, args=(u,), daemon=True) for u in urls]
        for t in threads:
            t.start()
        time.sleep(1.0)
        killed_at.append(time.monotonic())
        proc.kill()  # SIGKILL to calibnet-serve alone (the OOM killer's way): its tritonserver is left orphaned
        for t in threads:
            t.join(timeout=4 * timeout_s)
        assert not any(t.is_alive() for t in threads), "a client hangs on the killed server"
        for url in urls:
            exc, after = failures[url]
            print(f"{url}: {type(exc).__name__} after {after:.1f} s: {exc}")
            assert isinstance(exc, (ServerUnreachable, ServerOverloaded)), exc
            assert str(exc).startswith(f"server {url if '://' in url else 'http://' + url} "), exc
            assert after < 2 * timeout_s, (url, after)
    finally:
        if proc.poll() is None:
            _stop(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the killed server left (its tritonserver)
        proc.communicate()


# ---------------------------------------------------------------- generated Triton repository


def _bls_model_initializes(repo: Path, onnx_path: Path) -> None:
    """The BLS model of a generated repository, initialized as Triton does (its config as JSON): the network's
    outputs and the input limits come from its config.pbtxt."""
    import onnx
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    from calibnet.runtime.core.limits import default_limits
    from calibnet.serving.triton_python import TritonPythonModel

    cfg = text_format.Parse((repo / "calibnet" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps(json_format.MessageToDict(cfg, preserving_proto_field_name=True)),
                      "model_repository": str(repo / "calibnet"), "model_version": "1"})
    outputs = [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]
    assert model.runtime.backend.output_names == outputs and model.limits == default_limits() and model.batched


@pytest.mark.slow
def test_triton_repo_python_variant_runs_in_the_bundled_tritonserver(tiny, tmp_path):
    _need("pytriton", "nvidia-pytriton, which bundles tritonserver")
    _need("tritonclient.grpc", "tritonclient[http,grpc]")
    pytest.importorskip("onnx")
    from calibnet.serving.client import CalibnetClient, ServingError
    from calibnet.serving.triton_local import start_tritonserver
    from calibnet.serving.triton_repo import RepoError, validate_triton_repo, write_triton_repo

    _need_stub_env()
    path, frames = tiny
    # the ONNX Runtime and TensorRT variants: validated offline (config.pbtxt parsed, IO against the ONNX file)
    ort_repo = write_triton_repo(path, tmp_path / "repo_ort", variant="onnxruntime")
    assert validate_triton_repo(ort_repo) == []
    trt_repo = write_triton_repo(path, tmp_path / "repo_trt", variant="tensorrt")
    assert "model.plan is not built yet" in " ".join(validate_triton_repo(trt_repo, path))
    assert "MultiscaleDeformableAttnPlugin_TRT" in (trt_repo / "README.md").read_text()
    cfg = ort_repo / "calibnet_net" / "config.pbtxt"
    assert "/tmp" not in cfg.read_text() and '"/models/calibnet_net/trt_cache"' in cfg.read_text()
    _bls_model_initializes(ort_repo, path)
    cfg.write_text(cfg.read_text().replace('name: "valid_hw"', 'name: "valid_size"'))
    with pytest.raises(RepoError, match="valid_size"):
        validate_triton_repo(ort_repo)
    cfg = trt_repo / "calibnet" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("TYPE_UINT16", "TYPE_INT16"))
    with pytest.raises(RepoError, match="serving protocol"):
        validate_triton_repo(trt_repo, path)

    repo = path.parent / "repo_py"  # written by calibnet-export --triton-repo --triton-variant python
    assert validate_triton_repo(repo) == []
    assert (repo / "calibnet" / "1" / "model.onnx").read_bytes() == path.read_bytes()
    http, grpc, metrics = _free_ports(3)
    proc = start_tritonserver(repo, http, grpc, metrics, workdir=tmp_path / "ts", log_file=tmp_path / "ts.log")
    try:
        refs = _references(path, frames)
        for url in (f"127.0.0.1:{http}", f"grpc://127.0.0.1:{grpc}"):
            with CalibnetClient(url) as c:
                c.wait_ready(120)
                for i in (0, 3, 6):
                    _same(c.predict(*frames[i]), refs[i])
                for call, expected in _malformed(c, frames):
                    with pytest.raises(ServingError, match=expected.replace("(", r"\(")):
                        call()
                assert c.is_ready()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, (tmp_path / "ts.log").read_text()[-3000:]


# ---------------------------------------------------------------- Ray batch jobs


def _by_image(results):
    out: dict[int, list] = {}
    for r in results:
        out.setdefault(r["image_id"], []).append(r)
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow notices the bomb too
def test_ray_batch_equals_calibnet_infer_and_resumes_after_a_kill(tiny, tmp_path):
    _need("ray", "ray[data], for calibnet-infer --ray")
    from calibnet.cli.infer import main as infer_main

    path, _ = tiny
    data = tmp_path / "pairs"
    write_pairs(data, 40, seed=200)
    (data / "RGB" / "zz_bomb.png").write_bytes(png_bomb())  # pair 41: named in errors.json, the job goes on
    (data / "depth" / "zz_bomb.png").write_bytes((data / "depth" / "00.png").read_bytes())
    assert infer_main([str(path), "--rgb-dir", str(data / "RGB"), "--depth-dir", str(data / "depth"), "--out",
                       str(tmp_path / "infer"), "--no-overlay", "--threads", "1"]) == 1
    expected = json.loads((tmp_path / "infer" / "results.json").read_text())
    infer_errors = json.loads((tmp_path / "infer" / "errors.json").read_text())

    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "calibnet.cli.infer", str(path), "--ray", "--ray-cpus", "2", "--ray-actors", "2",
           "--ray-batch", "2", "--threads", "1", "--rgb-dir", str(data / "RGB"), "--depth-dir", str(data / "depth"),
           "--out", str(out), "--resume"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    progress = out / "progress.jsonl"
    wait_for_lines(proc, progress, 8, timeout=240)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray cluster it started
    log, _ = proc.communicate()
    first = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    assert 8 <= len(first) < 41, log[-3000:]
    assert not (out / "results.json").exists()  # killed before the merge

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stdout[-2000:] + rerun.stderr[-3000:]  # 1: a pair failed
    assert f"resuming: {len(first)} of 41 pairs already done" in rerun.stderr
    records = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    assert [r["key"] for r in records[:len(first)]] == [r["key"] for r in first]  # kept, not redone
    assert len(records) == 41 and len({r["key"] for r in records}) == 41  # the rest once each
    images = json.loads((out / "images.json").read_text())
    assert [im["id"] for im in images] == list(range(1, 41))
    got = json.loads((out / "results.json").read_text())
    errors = json.loads((out / "errors.json").read_text())
    assert [e["file"] for e in errors] == [e["file"] for e in infer_errors] == ["zz_bomb.png"]
    assert all("13000x13000" in e["reason"] and "larger than the limit" in e["reason"] for e in errors + infer_errors)
    e, g = _by_image(expected), _by_image(got)
    assert sorted(e) == sorted(g) == list(range(1, 41))
    for image_id in e:
        assert [r["segmentation"] for r in g[image_id]] == [r["segmentation"] for r in e[image_id]]
        np.testing.assert_allclose([r["score"] for r in g[image_id]], [r["score"] for r in e[image_id]], atol=1e-5)


@pytest.mark.slow
def test_ray_job_whose_actor_is_killed_mid_job_records_every_pair_exactly_once(tiny, tmp_path, capfd):
    """ray_batch with two actors; one of them killed with ray.kill once four pairs are recorded: Ray Data's
    execution fails with ActorDiedError, the job goes on by itself with the pairs not yet recorded, and ends with
    every pair's record exactly once in progress.jsonl and results equal to calibnet-infer's."""
    import gc

    ray = _need("ray", "ray[data], for calibnet-infer --ray")
    from calibnet.cli.infer import main as infer_main
    from calibnet.serving.ray_batch import ray_batch

    path, _ = tiny
    data = tmp_path / "pairs"
    n = 24
    write_pairs(data, n, seed=240)
    assert infer_main([str(path), "--rgb-dir", str(data / "RGB"), "--depth-dir", str(data / "depth"), "--out",
                       str(tmp_path / "infer"), "--no-overlay", "--threads", "1"]) == 0
    expected = _by_image(json.loads((tmp_path / "infer" / "results.json").read_text()))
    out = tmp_path / "ray"
    progress = out / "progress.jsonl"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    try:
        job: dict[str, object] = {}

        def run() -> None:
            try:
                job["report"] = ray_batch(path, data / "RGB", data / "depth", out, num_actors=2, batch_size=2,
                                          progress=False)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                job["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 240
        while thread.is_alive() and time.monotonic() < deadline and (
                not progress.is_file() or len(progress.read_text().splitlines()) < 4):
            time.sleep(0.05)
        # the job's actors: the handles Ray Data's executor holds in this (the driver's) process
        actors = [o for o in gc.get_objects() if type(o) is ray.actor.ActorHandle
                  and "PairPredictor" in o._ray_actor_creation_function_descriptor.class_name]
        recorded_at_kill = len(progress.read_text().splitlines())
        assert actors and recorded_at_kill < n, (len(actors), recorded_at_kill)
        ray.kill(actors[0])  # no restart: Ray Data's execution fails
        thread.join(timeout=300)
        assert not thread.is_alive() and "error" not in job, job.get("error")
    finally:
        ray.shutdown()
    assert "an actor died (ActorDiedError); going on with the" in capfd.readouterr().err
    report = job["report"]
    assert (report.done, report.failed, report.total) == (n, 0, n), report
    keys = [json.loads(line)["key"] for line in progress.read_text().splitlines()]
    assert sorted(keys) == sorted(f"{i:02d}.jpg" for i in range(n)), keys  # every pair exactly once
    images = json.loads((out / "images.json").read_text())
    assert [im["id"] for im in images] == list(range(1, n + 1))
    got = _by_image(json.loads((out / "results.json").read_text()))
    assert sorted(got) == sorted(expected) == list(range(1, n + 1))
    for image_id in expected:
        assert [r["segmentation"] for r in got[image_id]] == [r["segmentation"] for r in expected[image_id]]
        np.testing.assert_allclose([r["score"] for r in got[image_id]], [r["score"] for r in expected[image_id]],
                                   atol=1e-5)
