"""Light, sky and exposure specs and their seeded sampling (no bpy).

- `LightSpec`: a Blender lamp (point, sun, area, spot).
- `EnvironmentSpec`: the world: a uniform colour, a two-colour gradient sky, Blender's physical
  skies (Hosek-Wilkie; Nishita, Blender's "single scattering"), or an HDRI image (optional user assets, render/assets.py).
- Daylight (`daylight(rng)`): a physical sky (Hosek-Wilkie or Nishita) whose own sun disc is off, plus a Sun lamp pointing
  along the sky's sun direction (`sun_rotation_euler`); a lamp is sampled exactly by Cycles, a
  0.5 deg disc in the sky texture is not, and would be fireflies at 8-32 samples. Its irradiance
  is `SUN_TO_SKY` times the sky's strength: a clear day's ratio of direct sun to sky light.
  Hosek-Wilkie is the default sky: Blender precomputes a Nishita sky's texture on every render.
- Exposure: cameras meter; so does the renderer (`metered_exposure`): after the path tracer, the
  scene-linear image's log-average luminance is mapped to middle grey (0.18), the highlights
  (99.5th percentile) kept below the view transform's white, and the EV recorded with the
  fraction of clipped pixels (`clipped_fractions`) in the render's metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Vec3 = tuple[float, float, float]

LIGHT_KINDS = ("point", "sun", "area", "spot")
ENVIRONMENT_KINDS = ("uniform", "sky", "hosek_wilkie", "nishita", "hdri")
DAYLIGHT_SKIES = ("hosek_wilkie", "nishita")  # physical skies: sun position + atmosphere
# Sun lamp irradiance (W/m^2) per unit of sky strength, so that on a clear day the sun lights the
# ground ~5x as much as the sky does (measured on a white plane at 30 deg elevation, Blender 5.0).
SUN_TO_SKY = {"hosek_wilkie": 2.7, "nishita": 97.0}
MIDDLE_GREY = 0.18
EV_RANGE = (-10.0, 10.0)  # exposure the meter may choose, in stops
HIGHLIGHT_PERCENTILE = 99.5
HIGHLIGHT_MAX = 8.0  # scene-linear value (after exposure) that AgX still renders below white


@dataclass
class LightSpec:
    kind: str = "point"
    location: Vec3 = (0.0, 0.0, 3.0)
    rotation: Vec3 = (0.0, 0.0, 0.0)  # lights shine along their local -z (Blender convention)
    energy: float = 500.0  # W (point, spot, area) or W/m^2 (sun)
    color: Vec3 = (1.0, 1.0, 1.0)
    size: float = 0.1  # radius (point, spot), edge length (area), angle in radians (sun)


@dataclass
class EnvironmentSpec:
    kind: str = "uniform"
    color: Vec3 = (0.05, 0.05, 0.05)  # uniform color, or the sky's zenith color
    horizon_color: Vec3 = (0.6, 0.7, 0.8)  # sky only
    strength: float = 1.0
    # hosek_wilkie, nishita: the sun's position (radians); hosek_wilkie: turbidity (2 clear .. 10 hazy);
    # nishita: the atmosphere (Blender's densities, 1 = Earth's)
    sun_elevation: float = 0.7854
    sun_rotation: float = 0.0
    altitude: float = 0.0  # meters
    air_density: float = 1.0
    aerosol_density: float = 1.0
    ozone_density: float = 1.0
    turbidity: float = 2.5
    # hdri: an equirectangular .hdr/.exr image, turned by `image_rotation` about z
    image: str | None = None
    image_rotation: float = 0.0


class LightError(ValueError):
    """An invalid light or environment spec; the message names the offending field."""


def _num(x, where: str, lo: float = -math.inf, hi: float = math.inf) -> None:
    if not isinstance(x, (int, float, np.floating, np.integer)) or isinstance(x, bool) or not math.isfinite(x):
        raise LightError(f"{where} must be a finite number, got {x!r}")
    if not lo <= x <= hi:
        raise LightError(f"{where} must be >= {lo} and <= {hi}, got {x}")


def _vec(v, where: str, lo: float = -math.inf, hi: float = math.inf) -> None:
    if not isinstance(v, (tuple, list)) or len(v) != 3:
        raise LightError(f"{where} must be 3 numbers, got {v!r}")
    for i, x in enumerate(v):
        _num(x, f"{where}[{i}]", lo, hi)


def validate_light(light: LightSpec, where: str = "light") -> LightSpec:
    if light.kind not in LIGHT_KINDS:
        raise LightError(f"{where}.kind must be one of {list(LIGHT_KINDS)}, got {light.kind!r}")
    _vec(light.location, f"{where}.location")
    _vec(light.rotation, f"{where}.rotation")
    _num(light.energy, f"{where}.energy", 0)
    _vec(light.color, f"{where}.color", 0, 1)
    _num(light.size, f"{where}.size", 0)
    return light


def validate_environment(e: EnvironmentSpec, where: str = "environment") -> EnvironmentSpec:
    if e.kind not in ENVIRONMENT_KINDS:
        raise LightError(f"{where}.kind must be one of {list(ENVIRONMENT_KINDS)}, got {e.kind!r}")
    _vec(e.color, f"{where}.color", 0, 1)
    _vec(e.horizon_color, f"{where}.horizon_color", 0, 1)
    _num(e.strength, f"{where}.strength", 0)
    _num(e.sun_elevation, f"{where}.sun_elevation", -math.pi / 2, math.pi / 2)
    _num(e.sun_rotation, f"{where}.sun_rotation", -4 * math.pi, 4 * math.pi)
    _num(e.altitude, f"{where}.altitude", 0, 60000)
    _num(e.turbidity, f"{where}.turbidity", 1, 10)
    for name in ("air_density", "aerosol_density", "ozone_density"):
        _num(getattr(e, name), f"{where}.{name}", 0, 10)
    _num(e.image_rotation, f"{where}.image_rotation", -4 * math.pi, 4 * math.pi)
    if e.kind == "hdri":
        if not isinstance(e.image, str) or not e.image:
            raise LightError(f"{where}.image must name an .hdr or .exr file for kind 'hdri', got {e.image!r}")
    elif e.image is not None:
        raise LightError(f"{where}.image is only allowed for kind 'hdri', got {e.image!r} for {e.kind!r}")
    return e


# ---------------------------------------------------------------- sun geometry


def sun_direction(elevation: float, rotation: float) -> np.ndarray:
    """Unit vector from the scene towards the sun of Blender's sky texture (z up): azimuth
    `rotation` from +x towards +y (Blender 5.0's Nishita sky, measured on renders by
    tests/render/test_materials_blender.py; the Hosek-Wilkie sky is given this vector)."""
    c = math.cos(elevation)
    return np.array([c * math.cos(rotation), c * math.sin(rotation), math.sin(elevation)])


def sun_rotation_euler(direction: np.ndarray) -> Vec3:
    """XYZ Euler angles that point a Blender Sun lamp (which shines along its local -z) away from
    `direction` (the unit vector towards the sun): Rz(yaw) Rx(tilt) takes +z to `direction`."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    tilt = math.acos(max(-1.0, min(1.0, d[2])))
    yaw = math.atan2(d[0], -d[1])
    return (_r(tilt, 6), 0.0, _r(yaw, 6))


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def _v(x, nd: int = 4) -> Vec3:
    return tuple(_r(c, nd) for c in x)


# ---------------------------------------------------------------- sampling


def warm_white(rng: np.random.Generator) -> Vec3:
    """A lamp colour between cool (6500 K-ish) and warm (2700 K-ish) white."""
    warmth = rng.uniform(-0.15, 0.35)
    return _v((1.0, 1.0 - 0.3 * max(warmth, 0) + 0.1 * min(warmth, 0), 1.0 - 0.6 * max(warmth, 0)))


def daylight(rng: np.random.Generator, min_elevation_deg: float = 4.0, max_elevation_deg: float = 70.0,
             sky: str = "hosek_wilkie") -> tuple[EnvironmentSpec, LightSpec]:
    """A physical sky (sun disc off) and the Sun lamp that stands in for its sun, seeded.

    `sky`: "hosek_wilkie" (analytic: free) or "nishita" (Blender precomputes its texture on every
    render: 1-1.5 s on one core of the 2-core dev machine, more than a whole 64-px scene)."""
    if sky not in DAYLIGHT_SKIES:
        raise LightError(f"sky must be one of {list(DAYLIGHT_SKIES)}, got {sky!r}")
    elevation = math.radians(rng.uniform(min_elevation_deg, max_elevation_deg))
    rotation = rng.uniform(0.0, 2 * math.pi)
    haze = rng.uniform(0.0, 1.0) ** 2  # mostly clear
    env = EnvironmentSpec(sky, strength=_r(rng.uniform(0.6, 1.2), 3), sun_elevation=_r(elevation, 5),
                          sun_rotation=_r(rotation, 5), altitude=_r(rng.uniform(0.0, 500.0), 1),
                          air_density=_r(rng.uniform(0.7, 1.6), 3), aerosol_density=_r(0.5 + 4.5 * haze, 3),
                          ozone_density=_r(rng.uniform(0.5, 3.0), 3), turbidity=_r(2.0 + 6.0 * haze, 3))
    # Low sun: redder, through more air (the Nishita sky reddens on its own; the lamp follows).
    redden = max(0.0, 1.0 - math.degrees(elevation) / 25.0)
    color = _v((1.0, 1.0 - 0.25 * redden, 1.0 - 0.55 * redden))
    energy = SUN_TO_SKY[sky] * env.strength * math.sin(max(elevation, math.radians(2.0))) ** 0.5 * (1.0 - 0.5 * haze)
    sun = LightSpec("sun", (0.0, 0.0, 100.0), sun_rotation_euler(sun_direction(elevation, rotation)),
                    energy=_r(energy, 3), color=color, size=_r(math.radians(rng.uniform(0.5, 3.0)), 5))
    return env, sun


def ceiling_lights(rng: np.random.Generator, lo: tuple[float, float], hi: tuple[float, float], height: float,
                   n: int | None = None) -> list[LightSpec]:
    """1-4 area lights (panels) just under a ceiling at `height` over the rectangle lo..hi, seeded.

    Energies are a few watts per square meter of floor (a lit room), warm to cool white."""
    area = max((hi[0] - lo[0]) * (hi[1] - lo[1]), 1.0)
    n = int(rng.integers(1, 5)) if n is None else n
    per_light = area * rng.uniform(20.0, 60.0) / n
    color = warm_white(rng)
    out = []
    for _ in range(n):
        x, y = rng.uniform(lo[0] + 0.2 * (hi[0] - lo[0]), hi[0] - 0.2 * (hi[0] - lo[0])), \
            rng.uniform(lo[1] + 0.2 * (hi[1] - lo[1]), hi[1] - 0.2 * (hi[1] - lo[1]))
        out.append(LightSpec("area", _v((x, y, height - 0.02)), (0.0, 0.0, 0.0), energy=_r(per_light, 2),
                             color=color, size=_r(rng.uniform(0.4, 1.2), 3)))
    return out


def lamp_bulb(rng: np.random.Generator, location: Vec3, radius: float = 0.05) -> LightSpec:
    """A small point light: the bulb inside a lamp (its shade is an emissive material)."""
    return LightSpec("point", _v(location), energy=_r(rng.uniform(20.0, 120.0), 2), color=warm_white(rng),
                     size=_r(radius, 4))


def indoor_world(rng: np.random.Generator, windows: bool,
                 sky: str = "hosek_wilkie") -> tuple[EnvironmentSpec, list[LightSpec]]:
    """The world seen through a room's openings: daylight (sky + sun) when it has windows, else a
    dim neutral world (it is only seen through gaps)."""
    if windows:
        env, sun = daylight(rng, 8.0, 50.0, sky)
        return env, [sun]
    return EnvironmentSpec("uniform", _v([rng.uniform(0.005, 0.05)] * 3)), []


# ---------------------------------------------------------------- exposure


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of scene-linear RGB (..., 3)."""
    return rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722


def metered_exposure(linear_rgb: np.ndarray) -> float:
    """The exposure in stops (EV) for a scene-linear image, as an averaging camera meter sets it.

    The log-average luminance goes to middle grey; then the exposure is lowered, if needed, until
    the 99.5th percentile stays below the view transform's white (a bright sky or lamp may then
    stay bright, but the scene is not blown out). Clamped to EV_RANGE; 0 for an all-black image."""
    lum = luminance(np.asarray(linear_rgb, np.float64)).ravel()
    lum = lum[np.isfinite(lum)]
    if lum.size == 0 or lum.max() <= 0:
        return 0.0
    log_avg = math.exp(float(np.mean(np.log(np.maximum(lum, 1e-6)))))
    ev = math.log2(MIDDLE_GREY / log_avg)
    high = float(np.percentile(lum, HIGHLIGHT_PERCENTILE))
    if high > 0:
        ev = min(ev, math.log2(HIGHLIGHT_MAX / high))
    return float(min(max(ev, EV_RANGE[0]), EV_RANGE[1]))


def clipped_fractions(rgb8: np.ndarray, low: int = 2, high: int = 254) -> dict[str, float]:
    """Fractions of an 8-bit image's pixels that are blown (any channel >= `high`) or crushed
    (every channel <= `low`)."""
    rgb8 = np.asarray(rgb8)
    n = max(rgb8.shape[0] * rgb8.shape[1], 1)
    white = float(np.count_nonzero((rgb8 >= high).any(-1))) / n
    black = float(np.count_nonzero((rgb8 <= low).all(-1))) / n
    return {"clipped_white": white, "clipped_black": black, "clipped": white + black}


# ---------------------------------------------------------------- a scene's light


def relight(spec, rng: np.random.Generator, sky: str = "hosek_wilkie"):
    """A copy of `spec` (render.spec.SceneSpec) lit by this module's rules, from its objects alone:

    - outdoor (no ceiling): daylight, a physical sky and its sun;
    - a room (a ceiling over a floor): 1-4 ceiling panels; daylight outside when it has windows
      (the sun comes in through them), else a dim world; every lamp's shade glows;
    - tabletop (a floor and no ceiling, family "tabletop"): an area light over the table and a
      small fill light, daylight around it half of the time.
    """
    import copy

    out = copy.deepcopy(spec)
    floors = [o for o in out.objects if o.semantic_class == "floor"]
    ceilings = [o for o in out.objects if o.semantic_class == "ceiling"]
    if ceilings and floors:
        lo, hi = _xy_bounds(floors)
        height = min(o.location[2] - o.size[2] / 2 for o in ceilings)
        has_windows = any(o.semantic_class == "window" for o in out.objects)
        out.environment, out.lights = indoor_world(rng, has_windows, sky)
        out.lights = ceiling_lights(rng, lo, hi, height) + out.lights
        for o in out.objects:
            if o.semantic_class == "lamp":
                _glow(o.material, rng)
    elif out.family == "tabletop" and floors:
        tables = [o for o in out.objects if o.semantic_class in ("table", "desk")] or floors
        top = max(o.location[2] + o.size[2] / 2 for o in tables)
        cx, cy = tables[0].location[0], tables[0].location[1]
        out.lights = [LightSpec("area", _v((cx + rng.uniform(-0.8, 0.8), cy + rng.uniform(-0.8, 0.8), top + rng.uniform(1.0, 2.0))),
                                energy=_r(rng.uniform(80.0, 400.0), 2), color=warm_white(rng), size=_r(rng.uniform(0.4, 1.5), 3)),
                      LightSpec("point", _v((cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 0), top + rng.uniform(0.3, 1.5))),
                                energy=_r(rng.uniform(10.0, 100.0), 2), color=warm_white(rng), size=_r(rng.uniform(0.05, 0.3), 3))]
        if rng.uniform() < 0.5:
            out.environment, sun = daylight(rng, 10.0, 60.0, sky)
            out.lights.append(sun)
        else:
            out.environment = EnvironmentSpec("uniform", _v([rng.uniform(0.02, 0.2)] * 3))
    else:
        out.environment, sun = daylight(rng, sky=sky)
        out.lights = [sun]
    return out


def _xy_bounds(objs) -> tuple[tuple[float, float], tuple[float, float]]:
    lo = (min(o.location[0] - o.size[0] / 2 for o in objs), min(o.location[1] - o.size[1] / 2 for o in objs))
    hi = (max(o.location[0] + o.size[0] / 2 for o in objs), max(o.location[1] + o.size[1] / 2 for o in objs))
    return lo, hi


def _glow(material, rng: np.random.Generator) -> None:
    """A lamp's shade glows warm (render.materials.MaterialSpec.emission)."""
    from render.materials import hsv_linear

    material.color = hsv_linear(rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.4), rng.uniform(0.85, 1.0))
    material.emission = _r(rng.uniform(3.0, 15.0), 3)
