"""Renderer settings (no bpy): what the Blender adapter renders and on which device."""

from __future__ import annotations

from dataclasses import dataclass

_DEVICES = ("CPU", "CUDA", "OPTIX")
MAX_SAMPLES = 4096  # path-traced samples per pixel; production renders use 128-1024
MAX_BOUNCES = 128
MAX_FILTER_WIDTH = 10.0  # pixels (Blender's own limit is 10)
MAX_THREADS = 1024


@dataclass(frozen=True)
class RenderSettings:
    samples: int = 16  # beauty-pass samples per pixel: the frontier's knee (README, bench/render_frontier.py)
    adaptive_threshold: float = 0.01  # Cycles' adaptive-sampling noise threshold (Blender's default); 0 = off
    auto_exposure: bool = True  # meter each view (render/lights.py); False: the fixed `exposure`
    exposure: float = 0.0  # EV (stops) when auto_exposure is false
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
        # Upper bounds: past them one scene takes hours, so a typo (1e9) would make the job unbounded.
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"render.samples must be in [1, {MAX_SAMPLES}], got {self.samples}")
        if not 0 <= self.max_bounces <= MAX_BOUNCES:
            raise ValueError(f"render.max_bounces must be in [0, {MAX_BOUNCES}], got {self.max_bounces}")
        if not 0.01 <= self.filter_width <= MAX_FILTER_WIDTH:
            raise ValueError(f"render.filter_width must be in [0.01, {MAX_FILTER_WIDTH}] pixels, got {self.filter_width}")
        if not 0.0 <= self.adaptive_threshold <= 1.0:
            raise ValueError(f"render.adaptive_threshold must be in [0, 1] (0 = off), got {self.adaptive_threshold}")
        if not -20.0 <= self.exposure <= 20.0:
            raise ValueError(f"render.exposure must be in [-20, 20] stops, got {self.exposure}")
        if not 16 <= self.world_map_resolution <= 4096:
            raise ValueError(f"render.world_map_resolution must be in [16, 4096], got {self.world_map_resolution}")
        if not 0 <= self.threads <= MAX_THREADS:
            raise ValueError(f"render.threads must be in [0, {MAX_THREADS}] (0 = all cores), got {self.threads}")
