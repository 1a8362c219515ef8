"""Model files from other people load without running code: every loader (checkpoint, --init-backbone, training
resume) goes through calibnet.checkpoint.load_weights_file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hostile_files import RunsCommand, hostile_pickle

torch = pytest.importorskip("torch")

from calibnet.checkpoint import UnsafeCheckpointError, load_weights_file, read_state_dict  # noqa: E402
from calibnet.training.backbone_init import init_backbones  # noqa: E402
from calibnet.training.checkpointing import load_training_file  # noqa: E402


@pytest.mark.parametrize("protocol", [2, 5])
def test_hostile_pkl_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "R-50.pkl"
    path.write_bytes(hostile_pickle(marker, protocol))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_state_dict(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and ("posix.system" in msg or "os.system" in msg), msg
    assert not marker.exists()
    import calibnet

    model = calibnet.build_model("r18", eval_mode=False, quiet=True)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        init_backbones(model, path, quiet=True)  # --init-backbone
    assert not marker.exists()


def test_hostile_torch_files_are_refused_by_every_loader(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_final.pth"
    torch.save({"model": {}, "optimizer": {}, "iteration": 1, "x": RunsCommand(f"touch {marker}")}, path)
    for load in (read_state_dict, load_training_file, load_weights_file):  # --weights, --resume
        with pytest.raises(UnsafeCheckpointError, match="model_final.pth: refused") as info:
            load(path)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_weights_pickles_of_every_protocol_still_load(tmp_path):
    weights = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.int64)}
    for protocol in (2, 4, 5):
        path = tmp_path / f"w{protocol}.pkl"
        path.write_bytes(pickle.dumps({"model": weights, "__author__": "torchvision", "matching_heuristics": True},
                                      protocol=protocol))
        sd = read_state_dict(path)
        assert sd.keys() == weights.keys()
        assert all(torch.equal(sd[k], torch.from_numpy(v)) for k, v in weights.items())
    (tmp_path / "cut.pkl").write_bytes((tmp_path / "w2.pkl").read_bytes()[:40])
    with pytest.raises(pickle.UnpicklingError, match="cut.pkl: not a readable weights pickle"):
        read_state_dict(tmp_path / "cut.pkl")
