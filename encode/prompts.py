"""Instruction prompts per task: paraphrased templates that also state the visualization scheme.

`make_prompt(task, seed, **fields)` picks a template deterministically from `seed` and fills
it. Templates name the colormap (so a model can be told which scheme to draw) and, for
semantic segmentation, the class -> color map.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

DEPTH_SCHEMES = {
    "default": "the vistune colormap, a path snaking through the color cube from black (near) through "
               "reds, greens and blues to white (infinitely far), on a power-law scale",
    "vb": "the Vision Banana colormap running black, red, yellow, green, cyan, blue, magenta to white "
          "from near to far",
    "hot": "a hot colormap running black, red, yellow to white (infinitely far) from near to far, brighter "
           "meaning farther, on a power-law scale",
    "gray": "a grayscale ramp from black (near) to white (infinitely far), brighter meaning farther, on a "
            "logarithmic scale",
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "depth": (
        "Estimate the metric depth of this image and draw it with {scheme}.",
        "Render a depth map of the scene in meters, colored with {scheme}.",
        "Show how far every pixel is from the camera, using {scheme}.",
        "Turn this photo into a metric depth visualization: {scheme}.",
    ),
    "normals": (
        "Estimate surface normals and draw them as RGB: red for surfaces facing left, green for "
        "surfaces facing up, blue for surfaces facing the camera.",
        "Draw the surface normal map of this image in camera coordinates (light blue faces the camera, "
        "pinkish red faces left, light green faces up).",
        "Predict per-pixel surface orientation as a normal map; color = (1 - n) / 2 in OpenCV camera axes.",
    ),
    "semantic": (
        "Segment the image into classes and paint each class in its color: {classes}. Leave everything else black.",
        "Draw a semantic segmentation map with these colors: {classes}; unlabeled pixels are black.",
        "Color every pixel by its category ({classes}), black for anything not listed.",
    ),
    "instance": (
        "Segment every {target} instance, each in a different bright color on a black background.",
        "Draw an instance mask for each {target}: one distinct color per object, black elsewhere.",
        "Find all {target} instances and paint each one in its own color over black.",
    ),
    "referring": (
        "Segment {expression}: paint it {color} on a black background.",
        "Draw a mask of {expression} in {color}, everything else black.",
        "Highlight {expression} in {color}; the rest of the image is black.",
    ),
    "t2i": (
        "{caption}",
        "Generate an image: {caption}",
        "Create a picture of {caption}",
    ),
    "edit": (
        "{instruction}",
        "Edit this image: {instruction}",
        "Change the picture as follows: {instruction}",
    ),
    "denoise": (
        "Remove the noise from this photo.",
        "Denoise this image and keep every detail.",
        "Restore this noisy picture to a clean one.",
    ),
    "lowlight": (
        "Brighten this underexposed photo and remove its noise.",
        "Enhance this low-light image to a normal exposure.",
        "This photo was taken in the dark: restore it to good lighting.",
    ),
    "derain": (
        "Remove the rain streaks from this image.",
        "Clean the rain off this photo.",
        "Derain this picture.",
    ),
}


def _rgb(color: Sequence[int]) -> str:
    return "rgb({}, {}, {})".format(*(int(c) for c in color))


def class_color_list(class_names: Sequence[str], palette: Sequence[Sequence[int]]) -> str:
    """'cat rgb(...), dog rgb(...)' for class ids 1..N (palette index 0 is black/unlabeled)."""
    if len(palette) < len(class_names) + 1:
        raise ValueError(f"class_color_list: {len(class_names)} classes need {len(class_names) + 1} colors")
    return ", ".join(f"{name} {_rgb(palette[i])}" for i, name in enumerate(class_names, start=1))


def make_prompt(task: str, seed: int, **fields: Any) -> str:
    """A prompt for `task`, the template chosen by `seed`.

    Fields per task: depth: `preset` ("default" | "vb"); semantic: `class_names` and `palette`;
    instance: `target` (default "object"); referring: `expression`, optional `color` (RGB);
    t2i: `caption`; edit: `instruction`; restoration tasks (denoise, lowlight, derain): none.
    """
    if task not in TEMPLATES:
        raise ValueError(f"make_prompt: unknown task {task!r}; known: {sorted(TEMPLATES)}")
    template = random.Random(f"{task}:{seed}").choice(TEMPLATES[task])
    if task == "depth":
        preset = fields.get("preset", "default")
        if preset not in DEPTH_SCHEMES:
            raise ValueError(f"make_prompt: unknown depth preset {preset!r}; known: {sorted(DEPTH_SCHEMES)}")
        return template.format(scheme=DEPTH_SCHEMES[preset])
    if task == "semantic":
        return template.format(classes=class_color_list(fields["class_names"], fields["palette"]))
    if task == "instance":
        return template.format(target=fields.get("target", "object"))
    if task == "t2i":
        caption = str(fields.get("caption") or "").strip()
        if not caption:
            raise ValueError("make_prompt: the t2i task needs a non-empty `caption`")
        return template.format(caption=caption.rstrip("."))
    if task == "edit":
        instruction = str(fields.get("instruction") or "").strip()
        if not instruction:
            raise ValueError("make_prompt: the edit task needs a non-empty `instruction`")
        return template.format(instruction=instruction)
    if task == "referring":
        if not fields.get("expression"):
            raise ValueError("make_prompt: the referring task needs a non-empty `expression`")
        return template.format(expression=fields["expression"], color=_rgb(fields.get("color", (255, 255, 255))))
    return template
