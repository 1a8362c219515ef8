"""Forward contract, checkpoint loading and small-config behaviour of the model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet.checkpoint import CheckpointMismatchError  # noqa: E402


@pytest.mark.slow
def test_r18_forward_shapes_and_training_outputs(r18):
    rgb = torch.rand(2, 3, 64, 96) * 255
    depth = torch.rand(2, 1, 64, 96) * 255
    with torch.no_grad():
        out = r18(rgb, depth)
    assert out["pred_masks"].shape == (2, 50, 32, 48)
    assert out["depth_trust"].shape == (2, 3)
    r18.train()
    try:
        out = r18(rgb, depth)
        assert out["aux_rgb_t3"].shape == (2, 1, 8, 12)
        assert out["aux_depth_r2"].shape == (2, 1, 16, 24)
    finally:
        r18.eval()


@pytest.mark.parametrize("shape", [(1, 3, 70, 96), (1, 3, 64, 100)])
def test_size_not_multiple_of_32_is_a_clear_error(r18, shape):
    with pytest.raises(ValueError, match="multiples of 32"):
        r18(torch.zeros(shape), torch.zeros(shape[0], 1, *shape[2:]))


def test_bad_channel_counts_are_clear_errors(r18):
    with pytest.raises(ValueError, match="rgb must be"):
        r18(torch.zeros(1, 4, 64, 64), torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="differ"):
        r18(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 96))


@pytest.mark.slow
def test_checkpoint_roundtrip_detectron2_and_bare(r18, tmp_path):
    other = calibnet.build_model("r18", seed=5, quiet=True)
    d2 = calibnet.save_checkpoint(other, tmp_path / "d2.pth", iteration=3)
    torch.save(other.state_dict(), tmp_path / "bare.pth")
    for path in (d2, tmp_path / "bare.pth"):
        fresh = calibnet.build_model("r18", seed=9, quiet=True)
        calibnet.load_checkpoint(fresh, path)
        for k, v in other.state_dict().items():
            assert torch.equal(fresh.state_dict()[k], v), k


def test_checkpoint_mismatch_lists_missing_unexpected_wrong_shape(r18, tmp_path):
    sd = dict(r18.state_dict())
    sd.pop("decoder.inst_branch.fc.weight")
    sd["decoder.extra.weight"] = torch.zeros(3)
    sd["decoder.inst_branch.squeeze.weight"] = torch.zeros(10, 20)
    torch.save({"model": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        calibnet.load_checkpoint(calibnet.build_model("r18", quiet=True), tmp_path / "bad.pth")
    msg = str(info.value)
    assert "missing keys (1): decoder.inst_branch.fc.weight" in msg
    assert "unexpected keys (1): decoder.extra.weight" in msg
    assert "decoder.inst_branch.squeeze.weight (checkpoint [10, 20] vs model [50, 100])" in msg


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    import argparse

    torch.save({"model": {"a": torch.zeros(1)}, "args": argparse.Namespace(x=1)}, tmp_path / "evil.pth")
    with pytest.raises(calibnet.UnsafeCheckpointError, match="evil.pth: refused: the file asks for argparse.Namespace"):
        calibnet.read_state_dict(tmp_path / "evil.pth")


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        calibnet.read_state_dict(tmp_path / "nope.pth")


def test_image_sizes_batch_mismatch_is_an_error(r18):
    with pytest.raises(ValueError, match="image_sizes"):
        r18(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64), image_sizes=[(64, 64)])
