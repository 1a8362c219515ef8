"""calibnet.benchmarks: params, FLOPs, latency/FPS and accuracy per backend."""
