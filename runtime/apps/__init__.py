"""Applications built on the runtime core's public API: streaming, tracking, frame sources, batch runs and
overlays. No torch."""
