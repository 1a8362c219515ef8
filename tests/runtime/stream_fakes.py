"""A stand-in model for pipeline tests: a Backend whose "inference" takes a fixed time (sleep, like a
model on an accelerator: the GIL is free meanwhile) and returns outputs the runtime decodes (one instance
per frame: the near = dark half of the depth map), so the tests measure the pipeline, not a network."""

from __future__ import annotations

import threading
import time

import numpy as np

from calibnet.runtime.core.contract import ModelMetadata


class SleepBackend:
    """``run`` sleeps ``seconds`` and returns full outputs for a static graph of ``hw``; ``fail_at``: the
    call number (0-based) that raises ``RuntimeError``."""

    name = "sleep"

    def __init__(self, seconds: float, hw: tuple[int, int] = (128, 192), fail_at: int | None = None) -> None:
        self.seconds, self.fail_at, self.calls = seconds, fail_at, 0
        self.metadata = ModelMetadata(height=hw[0], width=hw[1], resize_short=min(hw), resize_max=max(hw),
                                      num_kernels=2)
        self.lock = threading.Lock()

    @property
    def input_names(self) -> list[str]:
        return ["rgb", "depth", "valid_hw"]

    @property
    def output_names(self) -> list[str]:
        return ["pred_logits", "pred_scores", "pred_masks", "depth_trust"]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            call = self.calls
            self.calls += 1
        if self.fail_at is not None and call == self.fail_at:
            raise RuntimeError(f"fake inference failure at call {call}")
        time.sleep(self.seconds)
        depth = feeds["depth"][:, 0, ::2, ::2]
        B = depth.shape[0]
        near = np.where(depth < 128, 8.0, -8.0).astype(np.float32)
        masks = np.stack([near, -near], 1)  # [B,2,H/2,W/2]: near region, far region
        logits = np.array([[[6.0], [-9.0]]] * B, np.float32)
        return {"pred_logits": logits, "pred_scores": logits.copy(), "pred_masks": masks,
                "depth_trust": np.ones((B, 3), np.float32)}

    def close(self) -> None:
        pass
