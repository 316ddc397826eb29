"""Invertible RGB codecs for dense vision targets.

    from encode import codecs
    c = codecs.get("depth")               # or codecs.get("depth", preset="vb")
    rgb = c.encode(depth)                 # (H, W, 3) uint8
    depth2 = c.decode(rgb)
    codecs.spec(c)                        # {"name", "version", "params"}: stored with each sample
"""

from encode.codecs import depth, instance, mask, normals, semantic  # noqa: F401  (registration)
from encode.codecs.registry import Codec, cached_from_spec, from_spec, get, names, register, spec

__all__ = ["Codec", "cached_from_spec", "from_spec", "get", "names", "register", "spec"]
