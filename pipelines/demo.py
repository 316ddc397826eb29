"""`vistune demo`: round-trip analytic depth and normal maps through the codecs, draw a contact sheet."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from encode import codecs
from encode.codecs.depth import PRESETS as DEPTH_PRESETS
from formats.atomic import atomic_open
from formats.config import from_dict
from render import analytic

_HEAT = np.array([[0, 0, 0], [90, 20, 130], [220, 60, 60], [250, 200, 40], [255, 255, 255]], np.float64)


@dataclass(frozen=True)
class DemoConfig:
    out: str = "outputs/demo"
    size: int = 256
    seed: int = 0
    depth_presets: tuple[str, ...] = ("default", "vb")
    noise_sigma: float = 4.0

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"demo: size must be >= 16, got {self.size}")
        unknown = [p for p in self.depth_presets if p not in DEPTH_PRESETS]
        if unknown:
            raise ValueError(f"demo: depth_presets {unknown} not in {sorted(DEPTH_PRESETS)}")
        if self.noise_sigma < 0:
            raise ValueError(f"demo: noise_sigma must be >= 0 (0 disables the noisy rows), got {self.noise_sigma}")


def config_from_dict(data: dict) -> DemoConfig:
    """The resolved `vistune demo` config -> DemoConfig; ConfigError naming a bad key or value."""
    return from_dict(DemoConfig, data)


def heat(x: np.ndarray, vmax: float) -> np.ndarray:
    """Values in [0, vmax] -> a black-purple-red-yellow-white heat map (NaN gray)."""
    u = np.clip(np.nan_to_num(x / vmax, nan=0.0), 0, 1) * (len(_HEAT) - 1)
    i = np.minimum(u.astype(int), len(_HEAT) - 2)
    f = (u - i)[..., None]
    rgb = _HEAT[i] * (1 - f) + _HEAT[i + 1] * f
    rgb[np.isnan(x)] = 128
    return rgb.astype(np.uint8)


def depth_gray(depth: np.ndarray) -> np.ndarray:
    """Log-depth as gray for display: near bright, far dark, sky blue-ish."""
    finite = np.isfinite(depth)
    lg = np.log(np.where(finite, np.maximum(depth, 1e-3), 1.0))
    lo, hi = lg[finite].min(), lg[finite].max()
    g = (1 - (lg - lo) / max(hi - lo, 1e-6)) * 230 + 25
    out = np.repeat(g[..., None], 3, axis=2)
    out[~finite] = (120, 160, 210)
    return out.astype(np.uint8)


def add_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).round().astype(np.uint8)


def _depth_rows(name: str, depth: np.ndarray, cfg: DemoConfig, rng: np.random.Generator) -> tuple[list, dict]:
    rows, stats = [], {}
    finite = np.isfinite(depth)
    for preset in cfg.depth_presets:
        codec = codecs.get("depth", preset=preset)
        enc = codec.encode(depth)
        variants = [("lossless", enc)] + ([(f"noise {cfg.noise_sigma:g}", add_noise(enc, cfg.noise_sigma, rng))]
                                          if cfg.noise_sigma > 0 else [])
        for label, image in variants:
            dec = codec.decode(image)
            both = finite & np.isfinite(dec)
            rel = np.full(depth.shape, np.nan)
            rel[both] = np.abs(dec[both] - depth[both]) / depth[both]
            key = f"{name}/depth[{preset}]/{label}"
            stats[key] = {"abs_rel": float(np.mean(rel[both])), "max_rel": float(np.max(rel[both])),
                          "finite_to_inf": float(np.mean(~np.isfinite(dec[finite]))),
                          "sky_to_finite": float(np.mean(np.isfinite(dec[~finite]))) if (~finite).any() else 0.0}
            rows.append((key, [depth_gray(depth), image, depth_gray(dec), heat(rel, 0.05)],
                         f"rel err, white = 5%  AbsRel {stats[key]['abs_rel']:.2%}"))
    return rows, stats


def _normal_rows(name: str, normals: np.ndarray, cfg: DemoConfig, rng: np.random.Generator) -> tuple[list, dict]:
    codec = codecs.get("normals")
    enc = codec.encode(normals)
    rows, stats = [], {}
    variants = [("lossless", enc)] + ([(f"noise {cfg.noise_sigma:g}", add_noise(enc, cfg.noise_sigma, rng))]
                                      if cfg.noise_sigma > 0 else [])
    for label, image in variants:
        dec = codec.decode(image)
        ang = np.degrees(np.arccos(np.clip(np.einsum("hwk,hwk->hw", dec, normals), -1, 1)))
        key = f"{name}/normals/{label}"
        stats[key] = {"mean_deg": float(np.nanmean(ang)), "max_deg": float(np.nanmax(ang))}
        shown = codec.encode(np.where(np.isnan(dec), np.nan, dec).astype(np.float32))
        rows.append((key, [enc, image, shown, heat(ang, 2.0)],
                     f"angle err, white = 2 deg  mean {stats[key]['mean_deg']:.2f} deg"))
    return rows, stats


def contact_sheet(rows: list, size: int) -> Image.Image:
    header, label_h, pad = 22, 18, 6
    cols = ["input", "encoded RGB", "decoded", "error map"]
    width = pad + len(cols) * (size + pad)
    height = header + len(rows) * (size + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(cols):
        draw.text((pad + c * (size + pad), 5), title, fill=(0, 0, 0))
    for r, (key, tiles, note) in enumerate(rows):
        y = header + r * (size + label_h + pad)
        draw.text((pad, y), f"{key}    {note}", fill=(0, 0, 0))
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (pad + c * (size + pad), y + label_h))
    return sheet


def run(cfg: DemoConfig) -> dict:
    """Write `contact_sheet.png` and `roundtrip.json` under `cfg.out`; return the stats."""
    rng = np.random.default_rng(cfg.seed)
    scenes = {"room": analytic.demo_room(cfg.size, cfg.size, cfg.seed)[0],
              "outdoor": analytic.demo_outdoor(cfg.size, cfg.size, cfg.seed)[0]}
    rows, stats = [], {}
    for name, truth in scenes.items():
        for make in (_depth_rows, _normal_rows):
            r, s = make(name, truth.depth if make is _depth_rows else truth.normals, cfg, rng)
            rows += r
            stats.update(s)
    out = Path(cfg.out)
    with atomic_open(out / "contact_sheet.png") as f:
        contact_sheet(rows, cfg.size).save(f, format="PNG")
    with atomic_open(out / "roundtrip.json", "w") as f:
        json.dump(stats, f, indent=2)
    return stats


def describe(cfg: DemoConfig, stats: dict) -> str:
    """The round-trip error of every row, and where the sheet and the JSON are."""
    width = max(len(k) for k in stats)
    lines = [f"{'round trip':<{width}}  error"]
    for key, row in stats.items():
        text = (f"AbsRel {row['abs_rel']:.3%}  max {row['max_rel']:.3%}  finite->inf {row['finite_to_inf']:.2%}"
                f"  sky->finite {row['sky_to_finite']:.2%}" if "abs_rel" in row
                else f"mean {row['mean_deg']:.3f} deg  max {row['max_deg']:.3f} deg")
        lines.append(f"{key:<{width}}  {text}")
    lines.append(f"wrote {cfg.out}/contact_sheet.png and {cfg.out}/roundtrip.json")
    return "\n".join(lines)
