"""COCO-style mask evaluation (AP, AP50, AP70) for any backend; importable without torch."""
