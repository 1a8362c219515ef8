"""Run by test_serving.py in a fresh interpreter: hostile inputs through calibnet-infer's source, the server's
request handling and the Ray job's map function, with this process's peak memory measured around them.

    python hostile_probe.py MODEL.onnx DATA_DIR   (DATA_DIR: RGB/00.jpg, depth/00.png and the bomb files)

Prints one JSON object: the refusal messages of each path, the peak-RSS growth (VmHWM after the refusals minus
VmRSS before them, the high-water mark reset first) and tracemalloc's peak (numpy's allocations, touched or not).
While the refusals run, the address space is capped at its size plus 256 MiB, so that an attempt to allocate a
large image fails loudly instead of passing unnoticed in untouched pages.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from calibnet.runtime import Runtime
from calibnet.runtime.apps.sources import FrameError, image_frames
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.limits import default_limits
from calibnet.runtime.core.readers import read_depth, read_rgb
from calibnet.serving.protocol import decode_request, refusal_of
from calibnet.serving.ray_batch import PairPredictor
from calibnet.serving.server import answer_requests

HEADROOM = 256 * 2**20


def status(key: str) -> int:
    """A /proc/self/status field in bytes."""
    return int(re.search(key + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def encoded(rgb: bytes, depth: bytes) -> dict[str, np.ndarray]:
    return {"rgb_encoded": np.array([[rgb]], dtype=object), "depth_encoded": np.array([[depth]], dtype=object)}


def ray_rows(pairs: list[tuple[Path, Path]]) -> dict[str, np.ndarray]:
    images = [json.dumps({"id": i + 1, "file_name": r.name}) for i, (r, _) in enumerate(pairs)]
    return {"key": np.array([r.name for r, _ in pairs], dtype=object), "image": np.array(images, dtype=object),
            "rgb": np.array([str(r) for r, _ in pairs], dtype=object),
            "depth": np.array([str(d) for _, d in pairs], dtype=object)}


def main() -> None:
    model, d = sys.argv[1], Path(sys.argv[2])
    good_rgb, good_depth = d / "RGB" / "00.jpg", d / "depth" / "00.png"
    bombs = {name: d / name for name in ("bomb.png", "bomb.hdr", "bomb.npy", "bomb.tif")}
    limits = default_limits()
    rt = Runtime.open(model, threads=1, strict=True)
    ray_job = PairPredictor(model, threads=1)
    good = encoded(good_rgb.read_bytes(), good_depth.read_bytes())
    # warm-up: each path once on a good input, so that the measurement below sees only the refusals
    assert not isinstance(next(image_frames([(good_rgb, good_depth)])), FrameError)
    assert not refusal_of(answer_requests(rt, [(good, None)], limits)[0])
    assert "results" in json.loads(ray_job(ray_rows([(good_rgb, good_depth)]))["record"][0])

    refusals: dict[str, list[str]] = {"readers": [], "infer": [], "serve": [], "ray": []}
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + HEADROOM, hard))
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    rss0 = status("VmRSS")
    tracemalloc.start()
    try:
        for name, path in bombs.items():
            for src in (path, path.read_bytes()):
                try:
                    read_depth(src)
                    refusals["readers"].append(f"{name}: read")
                except InputError as exc:
                    refusals["readers"].append(f"{type(exc).__name__}: {exc}")
        try:
            read_rgb(bombs["bomb.png"])
        except InputError as exc:
            refusals["readers"].append(f"{type(exc).__name__}: {exc}")
        pairs = [(bombs["bomb.png"], good_depth)] + [(good_rgb, bombs[n]) for n in ("bomb.hdr", "bomb.npy", "bomb.tif")]
        for fr in image_frames(pairs, errors="yield"):  # calibnet-infer's folder source
            refusals["infer"].append(f"{type(fr.error).__name__}: {fr.error}" if isinstance(fr, FrameError) else "read")
        raw = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (1, 8000, 8000, 3))  # 64 MP, no memory behind it
        requests = [encoded(bombs["bomb.png"].read_bytes(), good_depth.read_bytes()),
                    encoded(good_rgb.read_bytes(), bombs["bomb.hdr"].read_bytes()),
                    encoded(good_rgb.read_bytes(), bombs["bomb.npy"].read_bytes()),
                    {"rgb": raw, "depth": np.zeros((1, 1), np.uint8)}]
        for inputs in requests:  # the server's decoding of one request
            try:
                decode_request(inputs, None, limits)
                refusals["serve"].append("decoded")
            except InputError as exc:
                refusals["serve"].append(f"{type(exc).__name__}: {exc}")
        for raw_record in ray_job(ray_rows(pairs))["record"]:  # the Ray job's map function
            refusals["ray"].append(json.loads(raw_record).get("error", "read"))
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    rss_peak_delta = status("VmHWM") - rss0

    # a dynamic batch of 4 requests, one of them a decompression bomb: the other 3 are answered
    batch = [(good, {"request_id": "good-1"}), (encoded(bombs["bomb.png"].read_bytes(), good_depth.read_bytes()),
                                                {"request_id": "bomb-2"}),
             (good, {"request_id": "good-3"}), (good, {"request_id": "good-4"})]
    answers = answer_requests(rt, batch, limits)
    print(json.dumps({"refusals": refusals, "rss_peak_delta": rss_peak_delta, "traced_peak": traced_peak,
                      "batch": [{"error": refusal_of(a), "instances": int(a["scores"].shape[-1]) if "scores" in a
                                 else 0} for a in answers]}))


if __name__ == "__main__":
    main()
