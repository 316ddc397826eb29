"""Referring expressions that pick out exactly one instance, built from the instances themselves.

Each instance gets `ObjectFacts`: class, a color name voted from its pixels, coarse position
(left / center / right, top / middle / bottom), centroid, box and area. A `Query` is a small
structured description (class plus some of: color, position, a superlative such as
"leftmost" or "largest", or a relation such as "left of <anchor>"). `resolve(query, facts)`
returns every instance the query fits (relations read loosely: "above" = anywhere higher), and
an expression is emitted only when that list is exactly the target, which must also fit the
strict reading ("above" = over it): uniqueness holds by construction, and anyone can re-check
it with `resolve`. Superlatives and relations need a clear margin (`SUPERLATIVE_MARGIN`,
`RELATION_MARGIN`); near-ties are not described rather than described wrongly.

Wording comes from several templates per query kind, chosen deterministically from a seed.
Pure numpy / scipy; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

COLOR_NAMES = ("black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
MIN_COLOR_SHARE = 0.5  # a color is named only when more than this share of the pixels votes for it
SUPERLATIVE_MARGIN = 0.05  # leftmost/topmost: beat the runner-up by 5% of the image side
SIZE_RATIO = 1.5  # largest/smallest: 1.5x the runner-up's area
RELATION_MARGIN = 0.02  # left of / above: centroid beyond the anchor's box edge by 2% of the image side

SUPERLATIVES = ("leftmost", "rightmost", "topmost", "bottommost", "largest", "smallest")
RELATIONS = ("left_of", "right_of", "above", "below")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "class": ("the {cls}", "the only {cls}", "the {cls} in the image"),
    "color": ("the {color} {cls}", "{color} {cls}", "the {cls} that is {color}"),
    "hpos": ("the {cls} {hpos}", "{cls} {hpos}", "the {cls} that is {hpos}"),
    "vpos": ("the {cls} {vpos}", "{cls} {vpos}", "the {cls} {vpos} of the image"),
    "position": ("the {cls} in the {pos}", "{cls} in the {pos}", "the {pos} {cls}"),
    "color_position": ("the {color} {cls} {hpos}", "{color} {cls} {hpos}", "the {cls} {hpos} that is {color}"),
    "superlative": ("the {sup} {cls}", "{sup} {cls}", "the {cls} that is {sup}"),
    "relation": ("the {cls} {rel} the {anchor}", "{cls} {rel} the {anchor}", "the {cls} that is {rel} the {anchor}"),
}
HPOS_WORDS = {"left": "on the left", "center": "in the center", "right": "on the right"}
VPOS_WORDS = {"top": "at the top", "middle": "in the middle", "bottom": "at the bottom"}
POSITION_WORDS = {("top", "left"): "top left", ("top", "center"): "top center", ("top", "right"): "top right",
                  ("middle", "left"): "middle left", ("middle", "center"): "center", ("middle", "right"): "middle right",
                  ("bottom", "left"): "bottom left", ("bottom", "center"): "bottom center",
                  ("bottom", "right"): "bottom right"}
SUPERLATIVE_WORDS = {"leftmost": "leftmost", "rightmost": "rightmost", "topmost": "topmost",
                     "bottommost": "bottom-most", "largest": "largest", "smallest": "smallest"}
RELATION_WORDS = {"left_of": ("left of", "to the left of"), "right_of": ("right of", "to the right of"),
                  "above": ("above",), "below": ("below", "under")}


@dataclass(frozen=True)
class ObjectFacts:
    """What an expression may say about one instance (image-relative positions in [0, 1])."""

    id: int
    class_name: str
    color: str | None
    cx: float
    cy: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width / height
    area: int
    hpos: str
    vpos: str


@dataclass(frozen=True)
class Query:
    """A structured description: every non-None field must hold for an instance to fit."""

    class_name: str
    color: str | None = None
    hpos: str | None = None
    vpos: str | None = None
    superlative: str | None = None
    relation: str | None = None
    anchor: "Query | None" = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Query":
        d = dict(d)
        if d.get("anchor") is not None:
            d["anchor"] = cls.from_dict(d["anchor"])
        return cls(**d)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N, 3) float: hue in degrees [0, 360), saturation and value in [0, 1]."""
    x = rgb.astype(np.float64) / 255.0
    v = x.max(axis=1)
    c = v - x.min(axis=1)
    s = np.where(v > 0, c / np.maximum(v, 1e-12), 0.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    safe = np.maximum(c, 1e-12)
    h = np.select([c == 0, v == r, v == g], [0.0, ((g - b) / safe) % 6, (b - r) / safe + 2], (r - g) / safe + 4)
    return np.stack([h * 60.0, s, v], axis=1)


def pixel_color_names(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) indices into COLOR_NAMES, by hue/saturation/value rules."""
    h, s, v = rgb_to_hsv(rgb).T
    hue = np.select([(h < 15) | (h >= 345), h < 40, h < 70, h < 170, h < 260, h < 300], [3, 4, 5, 6, 7, 8], 9)
    warm = (hue == 3) | (hue == 4) | (hue == 5)
    hue = np.where(warm & (v < 0.6) & (s > 0.3), 10, hue)  # dark warm hues read as brown
    hue = np.where((hue == 3) & (s < 0.5) & (v > 0.7), 9, hue)  # pale red reads as pink
    name = np.where(s < 0.18, np.where(v > 0.85, 1, 2), hue)
    return np.where(v < 0.2, 0, name)


def color_name(pixels: np.ndarray, max_pixels: int = 20000) -> str | None:
    """The name most of `pixels` (N, 3) vote for, if more than MIN_COLOR_SHARE of them do; else None."""
    if len(pixels) == 0:
        return None
    if len(pixels) > max_pixels:  # a fixed stride keeps this deterministic
        pixels = pixels[:: len(pixels) // max_pixels + 1]
    votes = np.bincount(pixel_color_names(pixels), minlength=len(COLOR_NAMES))
    best = int(votes.argmax())
    return COLOR_NAMES[best] if votes[best] > MIN_COLOR_SHARE * len(pixels) else None


def object_facts(rgb: np.ndarray, instance_map: np.ndarray, classes: dict[int, str]) -> list[ObjectFacts]:
    """Facts for every id in `classes` (instance id -> class name) that appears in `instance_map`."""
    h, w = instance_map.shape
    boxes = ndimage.find_objects(instance_map.astype(np.int64))  # one pass instead of one full scan per id
    facts = []
    for iid in sorted(classes):
        region = boxes[iid - 1] if 0 < iid <= len(boxes) else None
        if region is None:
            continue
        ys, xs = np.nonzero(instance_map[region] == iid)
        ys, xs = ys + region[0].start, xs + region[1].start
        cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
        box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
        hpos = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center"
        vpos = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
        facts.append(ObjectFacts(iid, classes[iid], color_name(rgb[ys, xs]), float(cx), float(cy),
                                 tuple(float(b) for b in box), int(len(xs)), hpos, vpos))
    return facts


def _fits_plain(q: Query, f: ObjectFacts) -> bool:
    return (f.class_name == q.class_name and (q.color is None or f.color == q.color)
            and (q.hpos is None or f.hpos == q.hpos) and (q.vpos is None or f.vpos == q.vpos))


def _related(rel: str, f: ObjectFacts, a: ObjectFacts, strict: bool = False) -> bool:
    """f is `rel` a: f's centroid lies beyond a's box edge by RELATION_MARGIN.

    `strict` also asks for overlap on the other axis ("above" = over it, not just higher up).
    Expressions use the strict reading to choose what to say, and the loose one (what a reader
    might also accept) to check that it fits only the target.
    """
    m = RELATION_MARGIN
    beyond = {"left_of": f.cx < a.box[0] - m, "right_of": f.cx > a.box[2] + m,
              "above": f.cy < a.box[1] - m, "below": f.cy > a.box[3] + m}[rel]
    if not strict or not beyond:
        return beyond
    if rel in ("left_of", "right_of"):
        return a.box[1] <= f.cy <= a.box[3]
    return a.box[0] <= f.cx <= a.box[2]


def _extreme(sup: str, group: list[ObjectFacts]) -> list[ObjectFacts]:
    """The one member of `group` that is clearly `sup`, or the whole group when it is a near-tie."""
    if len(group) < 2:
        return group
    key = {"leftmost": lambda f: f.cx, "rightmost": lambda f: -f.cx, "topmost": lambda f: f.cy,
           "bottommost": lambda f: -f.cy, "largest": lambda f: -f.area, "smallest": lambda f: f.area}[sup]
    ranked = sorted(group, key=key)
    first, second = ranked[0], ranked[1]
    if sup in ("largest", "smallest"):
        big, small = (first.area, second.area) if sup == "largest" else (second.area, first.area)
        clear = big >= SIZE_RATIO * small
    else:
        clear = key(second) - key(first) >= SUPERLATIVE_MARGIN
    return [first] if clear else group


def resolve(query: Query, facts: list[ObjectFacts]) -> list[int]:
    """Ids of every instance that `query` fits (the semantics expressions are checked against)."""
    group = [f for f in facts if _fits_plain(query, f)]
    if query.relation is not None:
        anchors = resolve(query.anchor, facts) if query.anchor is not None else []
        if len(anchors) != 1:
            return []  # "left of the cup" means nothing when "the cup" is not one thing
        anchor = next(f for f in facts if f.id == anchors[0])
        group = [f for f in group if f.id != anchor.id and _related(query.relation, f, anchor)]
    if query.superlative is not None:
        group = _extreme(query.superlative, group)
    return [f.id for f in group]


def candidate_queries(target: ObjectFacts, facts: list[ObjectFacts]) -> dict[str, list[Query]]:
    """Every query kind (TEMPLATES' keys) -> the queries describing `target` in that way (unchecked)."""
    cls = target.class_name
    out: dict[str, list[Query]] = {"class": [Query(cls)], "hpos": [Query(cls, hpos=target.hpos)],
                                   "vpos": [Query(cls, vpos=target.vpos)],
                                   "position": [Query(cls, hpos=target.hpos, vpos=target.vpos)]}
    if target.color:
        out["color"] = [Query(cls, color=target.color)]
        out["color_position"] = [Query(cls, color=target.color, hpos=target.hpos)]
    out["superlative"] = [Query(cls, superlative=s) for s in SUPERLATIVES]
    anchors = {f.class_name: f for f in facts if f.class_name != cls}  # only class-unique anchors resolve
    out["relation"] = [Query(cls, relation=r, anchor=Query(name)) for name, a in anchors.items() for r in RELATIONS
                       if _related(r, target, a, strict=True)]
    return out


def unique_queries(target: ObjectFacts, facts: list[ObjectFacts]) -> dict[str, list[Query]]:
    """Like candidate_queries, keeping only queries that resolve to exactly the target."""
    out = {}
    for kind, queries in candidate_queries(target, facts).items():
        good = [q for q in queries if resolve(q, facts) == [target.id]]
        if good:
            out[kind] = good
    return out


def render_text(query: Query, kind: str, rng: np.random.Generator) -> tuple[str, str]:
    """Words for a query: (expression, template id `kind/index`)."""
    index = int(rng.integers(len(TEMPLATES[kind])))
    fields = {"cls": query.class_name, "color": query.color or "", "hpos": HPOS_WORDS.get(query.hpos or "", ""),
              "vpos": VPOS_WORDS.get(query.vpos or "", ""), "pos": POSITION_WORDS.get((query.vpos, query.hpos), ""),
              "sup": SUPERLATIVE_WORDS.get(query.superlative or "", "")}
    if query.relation is not None:
        words = RELATION_WORDS[query.relation]
        fields["rel"] = words[int(rng.integers(len(words)))]
        fields["anchor"] = query.anchor.class_name
    return TEMPLATES[kind][index].format(**fields), f"{kind}/{index}"


def referring_expressions(rgb: np.ndarray, instance_map: np.ndarray, classes: dict[int, str], seed: int,
                          per_instance: int = 2, max_total: int = 32) -> list[dict[str, Any]]:
    """Expressions for the instances of one image, each resolving to exactly one instance.

    Args:
        rgb: (H, W, 3) uint8, for color names.
        instance_map: (H, W) uint16 ids, 0 = none.
        classes: instance id -> class name.
        seed: the image's seed; the same inputs and seed give the same expressions.
        per_instance: at most this many expressions per instance, of different kinds.
        max_total: at most this many per image.

    Returns:
        [{"expression", "instance_id", "template", "query"}] in instance-id order.
    """
    rng = np.random.default_rng(seed)
    facts = object_facts(rgb, instance_map, classes)
    out: list[dict[str, Any]] = []
    for target in facts:
        options = unique_queries(target, facts)
        kinds = sorted(options)
        for k in rng.permutation(len(kinds))[:per_instance]:
            kind = kinds[int(k)]
            query = options[kind][int(rng.integers(len(options[kind])))]
            text, template = render_text(query, kind, rng)
            out.append({"expression": text, "instance_id": target.id, "template": template, "query": query.to_dict()})
    if len(out) > max_total:
        picks = sorted(rng.choice(len(out), size=max_total, replace=False).tolist())
        out = [out[i] for i in picks]
    return out
