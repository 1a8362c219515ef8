"""calibnet-serve: an exported CalibNet served by Triton Inference Server through PyTriton (HTTP + gRPC).

  calibnet-serve calibnet.onnx --port 8000 --grpc-port 8001 --max-batch 8 --instances 1

Serves the model "calibnet": one RGB-D frame per request (encoded images or raw arrays), answered with
scores, boxes, COCO RLE masks and the depth-trust scores (the tensors are listed in calibnet.serving.protocol).
Triton's dynamic batcher stacks requests whose frames have the same size (--max-batch, --batch-delay-us) and
each batch runs as one call of the runtime; --instances N runs N model instances, each with its own runtime.
Endpoints: /v2/health/live, /v2/health/ready, /v2/models/calibnet/ready; Prometheus metrics on --metrics-port.
SIGTERM or SIGINT stops the server cleanly (exit code 0).

A bad request (an undecodable or oversized image, RGB and depth of different sizes, a missing input, bad depth
parameters, anything that fails while it is decoded) is refused alone: its answer's error output holds one line
saying what is wrong and the request id, the other requests of its dynamic batch are answered, and the server
goes on serving (calibnet.serving.client.CalibnetClient raises ServingError with that line). No server path or
traceback reaches a client.

Limits (docs/security.md): every image and depth map is refused from its header, before it is decoded, above
--max-pixels, and every input above --max-input-mb; a request that waits longer than --timeout-s for the model
is refused, and at most --max-queue requests wait. The server binds 127.0.0.1 unless --address says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os

from calibnet.runtime.core.filecheck import file_problem
from calibnet.runtime.core.limits import REQUEST_TIMEOUT_S
from calibnet.runtime.core.targets import install_hint
from calibnet.serving.server import serve

from .app import CliError, parser, run_cli
from .options import add_input_limits, add_model, input_limits, non_negative, open_options

PROG = "calibnet-serve"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-serve``."""
    p = parser(PROG, __doc__)
    add_model(p)
    s = p.add_argument_group("server")
    s.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    s.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    s.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    s.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--max-batch", type=int, default=8, help="dynamic batching up to this many same-size frames "
                   "(1: off; default 8)")
    s.add_argument("--batch-delay-us", type=int, default=2000,
                   help="how long the batcher waits for more requests, microseconds (default 2000)")
    s.add_argument("--instances", type=int, default=1, help="model instances, each with its own runtime")
    s.add_argument("--log-verbose", type=int, default=0, help="Triton's log verbosity")
    lim = add_input_limits(p.add_argument_group("limits"))
    lim.add_argument("--timeout-s", type=non_negative(float), default=REQUEST_TIMEOUT_S,
                     help=f"refuse a request that waits longer for the model, seconds (default {REQUEST_TIMEOUT_S:g}; "
                          "0: no timeout)")
    lim.add_argument("--max-queue", type=non_negative(int), default=0,
                     help="refuse requests beyond this many waiting (default 0: 4 x --max-batch x --instances)")
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("CALIBNET_TRACEBACK"):  # a refused request's traceback (see calibnet.serving.server)
        logging.getLogger("calibnet").setLevel(logging.DEBUG)
    problem = file_problem(args.model)
    if problem is not None:  # a corrupt or foreign file is named before anything starts
        raise CliError(f"{args.model}: {problem}")
    try:
        import pytriton  # noqa: F401
    except ImportError as exc:
        raise CliError(f"PyTriton is not installed: {install_hint('serving')} ({exc})") from None
    return serve(args.model, port=args.port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                 max_batch=args.max_batch, instances=args.instances, options=open_options(args),
                 batch_delay_us=args.batch_delay_us, address=args.address, log_verbose=args.log_verbose,
                 limits=input_limits(args), timeout_s=args.timeout_s, max_queue=args.max_queue)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-serve``; every error ends in one line (a bad model file named)."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.model])


if __name__ == "__main__":
    raise SystemExit(main())
