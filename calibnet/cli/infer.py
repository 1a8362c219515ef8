"""calibnet-infer: salient instances for RGB-D images, folders and videos with an exported CalibNet (no torch).

Examples:
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A.png --out out/A
  calibnet-infer calibnet.onnx --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e
  calibnet-infer calibnet.onnx --ray --ray-actors 4 --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A_mm.png --depth-format metric --depth-near 300 \\
      --depth-far 4000 --out out/A            # a 16-bit depth PNG in millimetres (RealSense/Kinect)
  calibnet-infer calibnet.onnx --video scene.mp4 --depth-video scene_depth.mp4 --out out/scene
  calibnet-infer calibnet.onnx --video scene.mp4 --depth-dir scene_depth/ --depth-format metric --saliency
  calibnet-infer calibnet.onnx --bag rec.mcap --out out/rec --bag-out out/rec/results.mcap --rerun out/rec/run.rrd
  calibnet-infer calibnet.onnx --realsense --realsense-bag rec.db3 --out out/rs

Modes:
  single pair  --rgb and --depth;
  folder       --rgb-dir and --depth-dir: pairs matched by file stem (A.jpg <-> A.png), as in the
               COME15K/DSIS/SIP layout; image ids in sorted stem order;
  video        --video plus --depth-video (frame by frame) or --depth-dir (depth frames matched to video
               frames by index in natural sort order: 2.png before 10.png); writes overlay.avi (MJPG).
  bag          --bag: a ROS 2 bag (.mcap, .db3, or its folder) or a ROS 1 .bag; colour and depth topics found by
               themselves (or --rgb-topic / --depth-topic), each colour frame paired with the nearest depth
               message within --max-skew-ms; one image id per colour frame in stamp order, images.json entries
               with stamp_ns and depth_stamp_ns; depth in metres with one range for the whole bag
               (--depth-near/--depth-far in metres, or measured on the first frames). docs/robotics.md.
  RealSense    --realsense: a camera, or --realsense-bag: its recording, depth aligned to colour, in metres.

Writes results.json (COCO results: RLE segmentation, score, category 1, image id, instance_depth, the
frame's depth_health), images.json (id, file name, size, depth_health: the share of invalid depth pixels,
the three depth-trust scores and a verdict ok / degraded / unusable; in video mode one image id per frame),
an overlay PNG per image (or the overlay video; its badge shows the depth verdict) and, with
--saliency, the per-pixel saliency map (255 x the score of the best instance covering the pixel) as PNG.

Batch runs keep their work: each image's results are appended to progress.jsonl as soon as it is done;
results.json / images.json / errors.json are written atomically at the end, or when the run is interrupted
(Ctrl-C / SIGTERM finish the current frame first). An input that cannot be read or is refused goes to
errors.json with the reason and the run goes on (--fail-fast: stop at the first). --resume skips the inputs
already done in --out, so an interrupted run continued with --resume writes exactly what an uninterrupted run
writes. Exit code: 0 every input succeeded, 1 some failed (see errors.json), 2 bad arguments or model file,
130 / 143 interrupted by SIGINT / SIGTERM (outputs written; continue with --resume).

--stream runs folders and videos through Runtime.stream (reading + pre-processing, inference and
post-processing in three threads) and prints per-stage p50/p99, capture-to-result latency and throughput;
--track adds stable instance IDs (track_id in results.json, one color per ID in the overlays).

Robot data out: --bag-out OUT.mcap writes a ROS 2 MCAP that Foxglove opens (/calibnet/instances mono16 label
image, /calibnet/detections vision_msgs/Detection2DArray, /calibnet/overlay jpeg; --bag-copy-inputs adds the
input frames); --rerun FILE.rrd / --rerun-spawn log colour, depth, instance ids, boxes and depth trust to Rerun.

Depth: 8-bit maps (the data sets' PNGs) are used as is; 16-bit or float maps (PNG/TIFF/.npy) are metric
depth and are converted to the model's 8-bit convention (near = dark for the official checkpoints), per
frame min-max over the valid pixels or over the fixed --depth-near/--depth-far range; 0/NaN/inf pixels
count as far. See calibnet.runtime.core.depth for the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from calibnet.runtime.apps.batch import BatchInputs, BatchOptions, BatchResult, run_batch
from calibnet.runtime.apps.overlay import DRAW_MIN_SCORE
from calibnet.runtime.core.targets import install_hint
from calibnet.serving.ray_batch import ray_batch  # imports ray

from .app import CliError, parser, run_cli
from .options import (
    add_depth,
    add_input_limits,
    add_model,
    add_output,
    depth_format,
    input_limits,
    open_options,
    open_runtime,
    typed_options,
)

PROG = "calibnet-infer"


def _inputs(args: argparse.Namespace) -> BatchInputs:
    """The run's mode, from the input options (a CliError naming the options when they do not make one)."""
    modes = [m for m, on in (("--bag", args.bag), ("--realsense", args.realsense or args.realsense_bag),
                             ("--video", args.video), ("--rgb-dir", args.rgb_dir), ("--rgb", args.rgb)) if on]
    if len(modes) > 1:
        raise CliError(f"give one input mode, not {' and '.join(modes)}")
    if args.video:
        if args.depth_video and args.depth_dir:
            raise CliError("give --depth-video or --depth-dir with --video, not both")
        if not (args.depth_video or args.depth_dir):
            raise CliError("video mode needs --depth-video or --depth-dir (depth frames)")
    elif args.rgb_dir or args.depth_dir:
        if not (args.rgb_dir and args.depth_dir):
            raise CliError("folder mode needs both --rgb-dir and --depth-dir")
    elif not (args.rgb and args.depth) and not (args.bag or args.realsense or args.realsense_bag):
        raise CliError("give --rgb and --depth, --rgb-dir and --depth-dir, --video and --depth-video/--depth-dir, "
                       "--bag, or --realsense (see --help)")
    return typed_options(BatchInputs, args)


def run(args: argparse.Namespace) -> int:
    """calibnet-infer on parsed arguments; returns the exit code."""
    fmt = depth_format(args)
    src = _inputs(args)
    shown = DRAW_MIN_SCORE if args.min_score is None else args.min_score
    opts = BatchOptions(Path(args.out), args.resume, args.fail_fast, args.stream, args.track, args.min_score or 0.0,
                        not args.no_overlay, args.saliency, input_limits(args),
                        Path(args.bag_out) if args.bag_out else None, args.bag_copy_inputs,
                        Path(args.rerun) if args.rerun else None, args.rerun_spawn, overlay_min_score=shown)
    if args.ray:
        return _ray(args, src, opts)
    with open_runtime(args.model, open_options(args), depth_format=fmt, strict=args.strict) as rt:
        res = run_batch(rt, src, opts, say=lambda msg: tqdm.write(f"{PROG}: {msg}", file=sys.stderr))
    _summary(res)
    return res.exit_code


def _summary(res: BatchResult) -> None:
    what = "frames" if res.video else "images"
    print(f"wrote {res.detections} detections for {res.images} {what} to {res.out / 'results.json'}"
          + (f" and {res.video_path}" if res.video_path is not None else "")
          + (f"; {len(res.errors)} failed, see {res.out / 'errors.json'}" if res.errors else ""))
    if res.ok:
        mean = {k: v / res.ok * 1e3 for k, v in res.stage_seconds.items()}
        print(f"this run: {res.ok} frames in {res.wall_s:.1f} s ({res.ok / max(res.wall_s, 1e-9):.2f} frames/s with "
              f"I/O); mean per frame: pre {mean['pre']:.1f} ms, infer {mean['infer']:.1f} ms, "
              f"post {mean['post']:.1f} ms")
    if res.stats is not None:
        print(res.stats.summary())
    if res.damage:
        print(f"{PROG}: error: {res.damage}", file=sys.stderr)


def _ray(args: argparse.Namespace, src: BatchInputs, opts: BatchOptions) -> int:
    """Folder mode on Ray Data (calibnet.serving.ray_batch)."""
    if not (src.rgb_dir and src.depth_dir) or src.video:
        raise CliError("--ray runs folder mode: give --rgb-dir and --depth-dir")
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise CliError(f"--ray needs Ray Data: {install_hint('serving')} ({exc})") from None
    rep = ray_batch(args.model, src.rgb_dir, src.depth_dir, opts.out, address=args.ray_address,
                    num_actors=args.ray_actors, batch_size=args.ray_batch, threads=args.threads or 1,
                    num_cpus=args.ray_cpus, depth_format=depth_format(args), min_score=opts.min_score,
                    strict=args.strict, resume=opts.resume, limits=opts.limits)
    print(f"wrote {rep.detections} detections for {rep.total - rep.failed} images to {rep.out / 'results.json'}"
          + (f"; {rep.failed} failed, see {rep.out / 'errors.json'}" if rep.failed else "")
          + f" (this run: {rep.done} images in {rep.wall_s:.1f} s on Ray)")
    return 1 if rep.failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-infer``."""
    p = parser(PROG, __doc__)
    add_model(p)
    io = p.add_argument_group("inputs")
    io.add_argument("--rgb", help="RGB image")
    io.add_argument("--depth", help="depth map: 8-bit PNG as in the data sets, or 16-bit PNG / float TIFF / .npy")
    io.add_argument("--rgb-dir", help="folder of RGB images (folder mode)")
    io.add_argument("--depth-dir", help="folder of depth maps: same file stems (folder mode) or frames (video mode)")
    io.add_argument("--video", help="RGB video (video mode)")
    io.add_argument("--depth-video", help="depth video, frame by frame with --video (8-bit gray)")
    io.add_argument("--bag", metavar="REC", help="ROS bag: rosbag2 .mcap / .db3 file or folder, or ROS 1 .bag "
                    "(docs/robotics.md)")
    io.add_argument("--rgb-topic", help="--bag: the colour image topic (default: the bag's one colour topic)")
    io.add_argument("--depth-topic", help="--bag: the depth image topic (default: the bag's one depth topic)")
    io.add_argument("--max-skew-ms", type=float,
                    help="--bag / --realsense: largest colour-depth stamp difference paired (default: half the depth "
                         "period)")
    io.add_argument("--realsense", action="store_true", help="a RealSense camera (640x480 at 30 fps)")
    io.add_argument("--realsense-bag", metavar="FILE",
                    help="a RealSense recording (.db3 or .bag) instead of the camera")
    io.add_argument("--max-frames", type=int, default=0,
                    help="video, bag and RealSense: stop after this many frames (0: all)")
    add_input_limits(io)
    dp = add_depth(p.add_argument_group("depth"))
    dp.add_argument("--strict", action="store_true", help="error instead of resizing a depth map of another size")
    r = p.add_argument_group("batch runs")
    r.add_argument("--resume", action="store_true", help="skip the inputs already done in --out (progress.jsonl)")
    r.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    r.add_argument("--stream", action="store_true",
                   help="pipelined: read/pre-process, inference and post-process in three threads; prints "
                        "per-stage and capture-to-result p50/p99 and throughput")
    r.add_argument("--track", action="store_true",
                   help="stable instance IDs across frames (track_id in results.json, one color per ID); "
                        "implies --stream")
    ray = p.add_argument_group("Ray (folder mode on a Ray cluster: calibnet.serving.ray_batch)")
    ray.add_argument("--ray", action="store_true", help="run the folder's pairs with Ray Data, one runtime per actor")
    ray.add_argument("--ray-address", help="join this cluster (e.g. ray://head:10001 or auto; default: a local one)")
    ray.add_argument("--ray-actors", type=int, default=1, help="actors, each with its own runtime (default 1)")
    ray.add_argument("--ray-batch", type=int, default=4, help="pairs per map_batches call (default 4)")
    ray.add_argument("--ray-cpus", type=int, help="CPUs of the local cluster (default: all)")
    o = add_output(p.add_argument_group("outputs"), "out/infer")
    o.add_argument("--min-score", type=float,
                   help="drop detections below this score in results.json (default: keep all); draw and --track only "
                   f"those at or above it (default there: {DRAW_MIN_SCORE})")
    o.add_argument("--no-overlay", action="store_true", help="no overlay PNGs / overlay video")
    o.add_argument("--saliency", action="store_true", help="also write the per-pixel saliency map PNG")
    o.add_argument("--bag-out", metavar="OUT.mcap", help="also write the results as a ROS 2 MCAP (Foxglove): "
                   "/calibnet/instances, /calibnet/detections, /calibnet/overlay")
    o.add_argument("--bag-copy-inputs", action="store_true", help="--bag-out: also the processed input frames")
    o.add_argument("--rerun", metavar="FILE.rrd", help="also log frames and results to a Rerun recording")
    o.add_argument("--rerun-spawn", action="store_true", help="log to a Rerun viewer it starts")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-infer``."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.model])


if __name__ == "__main__":
    raise SystemExit(main())
