"""calibnet.export: PyTorch -> ONNX with the multi-scale deformable-attention op (needs torch, onnx)."""
