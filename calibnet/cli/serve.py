"""calibnet-serve: an exported CalibNet served by Triton Inference Server through PyTriton (HTTP + gRPC).

  calibnet-serve calibnet.onnx --port 8000 --grpc-port 8001 --max-batch 8 --instances 1

Serves the model "calibnet": one RGB-D frame per request (encoded images or raw arrays), answered with
scores, boxes, COCO RLE masks and the depth-trust scores (the tensors are listed in calibnet.serving.protocol).
Triton's dynamic batcher stacks requests whose frames have the same size (--max-batch, --batch-delay-us) and
each batch runs as one call of the runtime; --instances N runs N model instances, each with its own runtime.
Endpoints: /v2/health/live, /v2/health/ready, /v2/models/calibnet/ready; Prometheus metrics on --metrics-port.
SIGTERM or SIGINT stops the server cleanly (exit code 0).

A bad request (an undecodable image, RGB and depth of different sizes, a missing input, bad depth parameters)
is answered with an error that says what is wrong, and the server goes on serving. The valid requests that
shared a dynamic batch with a bad one are answered with an error marked [calibnet:batch-rejected]; the client
helper (calibnet.serving.client.CalibnetClient) sends them again.
"""

from __future__ import annotations

import argparse
import logging

from calibnet.runtime.core.filecheck import file_problem
from calibnet.serving.server import serve

from .app import CliError, parser, run_cli
from .options import add_model, open_options

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
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    problem = file_problem(args.model)
    if problem is not None:  # a corrupt or foreign file is named before anything starts
        raise CliError(f"{args.model}: {problem}")
    try:
        import pytriton  # noqa: F401
    except ImportError as exc:
        raise CliError(f"PyTriton is not installed: pip install 'calibnet[serving]' ({exc})") from None
    return serve(args.model, port=args.port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                 max_batch=args.max_batch, instances=args.instances, options=open_options(args),
                 batch_delay_us=args.batch_delay_us, address=args.address, log_verbose=args.log_verbose)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-serve``; every error ends in one line (a bad model file named)."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.model])


if __name__ == "__main__":
    raise SystemExit(main())
