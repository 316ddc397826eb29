"""Renderer settings (no bpy): what the Blender adapter renders and on which device."""

from __future__ import annotations

from dataclasses import dataclass

_DEVICES = ("CPU", "CUDA", "OPTIX")


@dataclass(frozen=True)
class RenderSettings:
    samples: int = 32  # beauty-pass samples per pixel
    denoise: bool = True  # OpenImageDenoise on the beauty pass
    max_bounces: int = 6
    filter_width: float = 1.5  # beauty-pass pixel filter (Blackman-Harris width in pixels)
    view_transform: str = "AgX"  # Blender's default display transform; "Standard" for plain sRGB
    world_map_resolution: int = 256  # sky importance map; Blender's 1024 default costs ~1 s per render
    rgb: bool = True  # False: ground-truth passes only
    device: str = "CPU"  # CPU | CUDA | OPTIX
    threads: int = 1  # Cycles threads per renderer (0 = all cores); one worker per core by default

    def __post_init__(self) -> None:
        if self.device not in _DEVICES:
            raise ValueError(f"render.device must be one of {list(_DEVICES)}, got {self.device!r}")
        if self.samples < 1:
            raise ValueError(f"render.samples must be >= 1, got {self.samples}")
        if not 16 <= self.world_map_resolution <= 4096:
            raise ValueError(f"render.world_map_resolution must be in [16, 4096], got {self.world_map_resolution}")
        if self.threads < 0:
            raise ValueError(f"render.threads must be >= 0, got {self.threads}")
