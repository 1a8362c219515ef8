"""Shared fixtures. Files from ../shared/official are read in place (never copied into the project);
tests that need them skip with a reason when the folder is absent (a user's clone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Python source that makes `import torch` fail in a subprocess (prefix it to `python -c` code).
BLOCK_TORCH = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is blocked for this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def run_without_torch(code: str, cwd: Path | None = None, timeout: int = 300,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run python ``code`` in a fresh interpreter where ``import torch`` fails (``sys`` is imported); ``env``: more
    environment variables."""
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, **(env or {})})


def predict_without_torch(model: Path, hw: tuple[int, int], open_args: str = "",
                          then: str = "") -> subprocess.CompletedProcess:
    """``Runtime.open(model<open_args>).predict`` on a random uint8 frame of size ``hw`` without torch; the code
    asserts that torch stayed out and that the masks have the frame's size, then runs ``then`` (``rt``, ``p``)."""
    h, w = hw
    return run_without_torch(
        "import numpy as np\n"
        "from calibnet.runtime import Runtime\n"
        f"rt = Runtime.open({str(model)!r}{open_args})\n"
        "g = np.random.default_rng(0)\n"
        f"rgb = (g.random(({h}, {w}, 3)) * 255).astype(np.uint8)\n"
        f"depth = (g.random(({h}, {w})) * 255).astype(np.uint8)\n"
        "p = rt.predict(rgb, depth)\n"
        f"assert 'torch' not in sys.modules and p.masks.shape[1:] == ({h}, {w})\n" + then)


def shared_official_dir() -> Path | None:
    """``$CALIBNET_SHARED/official`` or ``<repo>/../shared/official`` if it exists."""
    env = os.environ.get("CALIBNET_SHARED")
    candidates = [Path(env) / "official"] if env else []
    candidates.append(REPO.parent / "shared" / "official")
    for c in candidates:
        if (c / "manifest_r50.json").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def official_dir() -> Path:
    d = shared_official_dir()
    if d is None:
        pytest.skip("../shared/official (official manifests, deterministic weights, reference outputs) "
                    "is not beside this checkout; set CALIBNET_SHARED to its parent to run these tests")
    return d


def official_state_dict(official: Path, manifest: str = "manifest_r50.json", seed: int = 0):
    """The deterministic weights of ../shared/official/det_weights.py as a torch state dict."""
    import torch

    sys.path.insert(0, str(official))
    try:
        from det_weights import make_state_dict
    finally:
        sys.path.remove(str(official))
    entries = json.loads((official / manifest).read_text())["entries"]
    return {k: torch.from_numpy(v) for k, v in make_state_dict(entries, seed=seed).items()}


@pytest.fixture(scope="session")
def r18():
    """The deterministic R18 CalibNet (seed 0, eval mode), built once per session and shared: a test that
    switches it to train mode switches it back, and one that changes weights or config works on a copy."""
    pytest.importorskip("torch")
    import calibnet

    return calibnet.build_model("r18", quiet=True)


@pytest.fixture(scope="session")
def det_checkpoint_r50(official_dir: Path, tmp_path_factory) -> Path:
    """A detectron2-format checkpoint ({"model": state_dict}) with the seed-0 deterministic weights."""
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "det_r50_seed0.pth"
    torch.save({"model": official_state_dict(official_dir)}, path)
    return path


@pytest.fixture(scope="session")
def r50_model(official_dir: Path, det_checkpoint_r50: Path):
    """The R50 model from the official YAML with the deterministic weights loaded, in eval mode."""
    import torch

    import calibnet

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg = calibnet.CalibNetConfig.from_yaml(official_dir / "configs" / "CalibNet_R50_50e_50q_320size.yaml")
    model = calibnet.CalibNet(cfg)
    calibnet.load_checkpoint(model, det_checkpoint_r50)
    return model.eval()


def padded_network_input(rgb_u8, depth_u8, divisor: int = 32):
    """Network tensors for an image as is: zero raw padding bottom/right to a multiple of ``divisor``
    (the value does not matter: the model zeroes the normalized padding) and its (h, w)."""
    import torch

    h, w = depth_u8.shape
    H, W = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    rgb = torch.zeros(1, 3, H, W)
    rgb[0, :, :h, :w] = torch.from_numpy(rgb_u8).permute(2, 0, 1).float()
    depth = torch.zeros(1, 1, H, W)
    depth[0, 0, :h, :w] = torch.from_numpy(depth_u8).float()
    return rgb, depth, (h, w)


def msda_plugin_graph(n_levels: int, m: int, d: int, p: int, value_type: int | None = None,
                      index_type: int | None = None, value_rank: int = 4):
    """An ONNX model of one TensorRT MSDA plugin node with dynamic N/S/Lq, as TensorRT sees it: ``value`` [N,S,m,d]
    (``value_rank`` cuts or extends it), ``spatial_shapes`` / ``level_start_index`` (INT32 by default), sampling
    locations and attention weights (FLOAT by default) over ``n_levels`` levels and ``p`` points."""
    from onnx import TensorProto, helper

    from calibnet.runtime.core.contract import PLUGIN_DOMAIN, PLUGIN_NAME

    vt = TensorProto.FLOAT if value_type is None else value_type
    it = TensorProto.INT32 if index_type is None else index_type
    value_dims = ["N", "S", m, d][:value_rank] if value_rank <= 4 else ["N", "S", m, d, 1]
    inputs = [helper.make_tensor_value_info("value", vt, value_dims),
              helper.make_tensor_value_info("spatial_shapes", it, [n_levels, 2]),
              helper.make_tensor_value_info("level_start_index", it, [n_levels]),
              helper.make_tensor_value_info("loc", vt, ["N", "Lq", m, n_levels, p, 2]),
              helper.make_tensor_value_info("attn", vt, ["N", "Lq", m, n_levels, p])]
    node = helper.make_node(PLUGIN_NAME, ["value", "spatial_shapes", "level_start_index", "loc", "attn"], ["out"],
                            domain=PLUGIN_DOMAIN, name="/enc/self_attn/" + PLUGIN_NAME, plugin_version="1")
    graph = helper.make_graph([node], "msda", inputs, [helper.make_tensor_value_info("out", vt, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(PLUGIN_DOMAIN, 1)])


def write_pairs(folder: Path, n: int, seed: int = 0, hw: tuple[int, int] = (64, 96)) -> tuple[Path, Path]:
    """``n`` synthetic RGB-D scenes as ``folder/RGB/NN.jpg`` + ``folder/depth/NN.png`` (pairs by file stem,
    sorted in scene order); returns the two folders."""
    import cv2

    from calibnet.data.synthetic import make_scene

    (folder / "RGB").mkdir(parents=True)
    (folder / "depth").mkdir()
    for i in range(n):
        s = make_scene(seed + i, *hw)
        cv2.imwrite(str(folder / "RGB" / f"{i:02d}.jpg"), s.rgb[:, :, ::-1])
        cv2.imwrite(str(folder / "depth" / f"{i:02d}.png"), s.depth)
    return folder / "RGB", folder / "depth"


def wait_for_lines(proc: subprocess.Popen, path: Path, n: int, timeout: float) -> None:
    """Wait until ``path`` (a JSON-lines progress log) holds ``n`` lines, ``proc`` ends or ``timeout`` passes."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory) -> Path:
    """The synthetic-r18 recipe's model (R18, 1-layer encoders, 10 kernels) exported to ONNX at 128x192, once per
    session: a real CalibNet graph that runs in a fraction of a second per small frame."""
    pytest.importorskip("torch")
    import calibnet
    from calibnet.export import export_onnx
    from calibnet.training.recipes import RECIPES

    cfg = calibnet.get_config("r18").replace(**RECIPES["synthetic-r18"].overrides)
    return export_onnx(calibnet.build_model(cfg, quiet=True), tmp_path_factory.mktemp("small") / "small.onnx",
                       height=128, width=192)
