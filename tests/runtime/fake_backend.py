"""A backend that exists only for the tests: ONNX Runtime under another name, counting its calls. Registering
it (one row of the table of targets) is all it takes for Runtime.open, the bench and eval to accept it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibnet.runtime.backends.onnxruntime import OnnxRuntimeBackend
from calibnet.runtime.core.targets import Target

CALLS: list[str] = []


class FakeBackend(OnnxRuntimeBackend):
    """Runs a calibnet ONNX graph (any file name) on ONNX Runtime's CPU provider."""

    name = "fake"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        super().__init__(path, providers=["CPUExecutionProvider"], threads=threads)
        CALLS.append(f"open {Path(path).name}")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        CALLS.append("run")
        return super().run(feeds)


#: its row of the table of targets: files ending in .fake, the portable ONNX export as its artifact
ROW = Target("fake", "fake_backend:FakeBackend", (".fake",), options=("threads",), summary="a test backend",
             metadata_reader="calibnet.runtime.core.contract:read_onnx_metadata", artifacts={"*": "onnx"})
