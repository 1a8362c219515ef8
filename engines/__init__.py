"""calibnet.engines: ONNX -> TensorRT FP16 engines and the engine cache (needs tensorrt and a GPU to build)."""
