"""Contact sheets of task samples: input | target | decoded target shown over the input | prompt.

The third column proves the target decodes: depth is decoded to meters and drawn with a
log-scaled grayscale ramp (near = bright) beside its range; normals are decoded and re-drawn;
masks and ids are decoded and blended over the input. Generation and restoration samples show
input, target and the absolute difference.
"""

from __future__ import annotations

import html
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from encode import codecs
from encode.codecs.palette import distinct_colors
from encode.sample import TaskSample


def decoded_view(sample: TaskSample) -> tuple[np.ndarray, str]:
    """An RGB picture of the decoded target and a one-line description of what it holds."""
    spec = sample.meta.get("codec")
    base = sample.input if sample.input is not None else np.zeros_like(sample.target)
    if not spec:
        diff = np.abs(sample.target.astype(np.int16) - base.astype(np.int16)).astype(np.uint8)
        return diff, f"|target - input|, mean {diff.mean():.1f}"
    codec = codecs.from_spec(spec)
    value = codec.decode(sample.target)
    if spec["name"] == "depth":
        finite = np.isfinite(value) & (value > 0)
        out = np.zeros(value.shape + (3,), np.uint8)
        if finite.any():
            logd = np.log(value[finite])
            lo, hi = float(logd.min()), float(logd.max())
            out[finite] = (255 * (1 - (logd - lo) / max(hi - lo, 1e-6)))[:, None].astype(np.uint8)
            return out, f"depth {np.exp(lo):.2f}-{np.exp(hi):.2f} m, sky {np.mean(np.isinf(value)):.0%}"
        return out, "depth: no finite pixels"
    if spec["name"] == "normals":
        ok = np.isfinite(value).all(-1)
        return codec.encode(value), f"normals valid {ok.mean():.0%}"
    if spec["name"] == "mask":
        mask = value.astype(bool)
        over = base.copy()
        over[mask] = (0.4 * over[mask] + 0.6 * np.array([255, 40, 40])).astype(np.uint8)
        return over, f"mask {mask.mean():.1%} of the image"
    ids = value
    palette = np.asarray(distinct_colors(int(ids.max()) + 1))
    colors = palette[np.minimum(ids, len(palette) - 1)]
    over = np.where((ids > 0)[..., None], 0.35 * base + 0.65 * colors, base).astype(np.uint8)
    return over, f"{spec['name']}: {len(np.unique(ids[ids > 0]))} ids"


def contact_sheet(samples: list[TaskSample], cell: int = 192, text_width: int = 360) -> Image.Image:
    """One row per sample: input, target, decoded view, prompt + description."""
    font = ImageFont.load_default()
    sheet = Image.new("RGB", (3 * cell + text_width, max(len(samples), 1) * cell), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, s in enumerate(samples):
        view, desc = decoded_view(s)
        for c, img in enumerate((s.input, s.target, view)):
            if img is not None:
                sheet.paste(Image.fromarray(img).resize((cell, cell), Image.NEAREST), (c * cell, r * cell))
        text = f"[{s.task} / {s.split}] {s.key}\n{desc}\n\n" + "\n".join(textwrap.wrap(s.prompt, 58))
        draw.multiline_text((3 * cell + 8, r * cell + 6), text, fill=(230, 230, 230), font=font)
    return sheet


def preview_html(by_task: dict[str, list[TaskSample]]) -> str:
    """An HTML page showing `<task>.png` (one contact sheet per task) with the prompts listed."""
    rows = []
    for task, samples in sorted(by_task.items()):
        prompts = "".join(f"<li><code>{html.escape(s.key)}</code>: {html.escape(s.prompt)}</li>" for s in samples)
        rows.append(f"<h2>{html.escape(task)} ({len(samples)} samples)</h2>"
                    f"<p>input | target | decoded target | prompt</p><img src='{task}.png'><ul>{prompts}</ul>")
    return ("<!doctype html><meta charset='utf-8'><title>vistune preview</title>"
            "<style>body{font-family:sans-serif;background:#181818;color:#ddd}img{max-width:100%}</style>"
            "<h1>vistune task samples</h1>" + "".join(rows))
