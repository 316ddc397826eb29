"""Synthetic 3D data engine: seeded scene specs rendered by Blender into raw shards (see docs/design.md)."""
