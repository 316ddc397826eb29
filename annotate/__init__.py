"""2D data engine: pseudo-labels for real web images, written as raw label shards (see docs/design.md)."""
