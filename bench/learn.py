"""Codec learnability: what a trained generator decodes best, and how depth codecs fare under
model-like corruptions.

    .venv/bin/python bench/learn.py                         # corruption table + training study (~15 min, 2 cores)
    .venv/bin/python bench/learn.py --corruptions-only      # the corruption table alone (seconds)
    .venv/bin/python bench/learn.py --scenes 2000 --steps 3000 --seeds 5 --render outputs/run/render
    .venv/bin/python bench/learn.py --corruptions-only --vae /models/sd2   # + the VAE round trip (a VAE or pipeline dir)

Part 1 (corruptions): real rendered depth maps (or, with --corruptions-only, analytic rooms) are
encoded with every candidate codec, corrupted the way a generator errs (Gaussian blur, two
colours mixed, box down/up-sampling, additive noise, JPEG 4:2:0) and decoded: AbsRel and the share
of pixels decoded outside +-25% of the truth, per codec.

Part 2 (training): the same model, budget, data and seeds trained on the depth task encoded with
each candidate codec (with `--loss-mask both`, also with sky and invalid pixels left in the loss); held-out AbsRel / delta1 (one-step sampling) as mean +- std over seeds,
with the per-pixel baseline, the constant baseline and the codec oracle as rows. The rendered
scenes are split by scene (encode's eval split); the baselines are fitted on the training split.

With `--vae DIR` (a VAE or pipeline directory, evals/vae_floor.py) both tables get a `vae-oracle` row:
the encoded truth round-tripped through that VAE (latent mode, fp32), the floor of a latent model
using it (in part 1 at each map's own size, in part 2 at the model resolution `--size`).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

# This script's directory holds bench/encode.py and bench/train.py, which would shadow the
# `encode` and `train` packages: import from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from encode import codecs  # noqa: E402

CODECS = ("default", "vb", "hot", "gray", "gray+canonical")
# A candidate is a depth preset, optionally "+canonical": targets drawn for encode's canonical
# camera (depth x f_c / f, encode/codecs/depth.py); the colormap and the corruption rows are the preset's.


def _preset(candidate: str) -> str:
    return candidate.partition("+")[0]


def _presets(candidates) -> list[str]:
    return list(dict.fromkeys(_preset(c) for c in candidates))


# ---------------------------------------------------------------- part 1: corruptions

def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    out = np.stack([ndimage.gaussian_filter(rgb[..., c].astype(np.float32), sigma) for c in range(3)], -1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _box(rgb: np.ndarray, factor: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((max(w // factor, 1), max(h // factor, 1)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


def _noise(rgb: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).round().astype(np.uint8)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=2)  # 4:2:0
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


CORRUPTIONS = {
    "blur s0.5": lambda x: _blur(x, 0.5), "blur s1": lambda x: _blur(x, 1.0), "blur s2": lambda x: _blur(x, 2.0),
    "box x2": lambda x: _box(x, 2), "box x4": lambda x: _box(x, 4),
    "noise s4": lambda x: _noise(x, 4.0), "noise s8": lambda x: _noise(x, 8.0),
    "jpeg q90": lambda x: _jpeg(x, 90), "jpeg q75": lambda x: _jpeg(x, 75),
}


def _errors(truth: np.ndarray, back: np.ndarray) -> tuple[float, float]:
    """(AbsRel over finite truth, share of finite-truth pixels decoded outside +-25% or invalid)."""
    ok = np.isfinite(truth) & (truth > 0)
    pred = np.where(np.isfinite(back), back, 1e4)  # +inf / NaN on finite truth: as bad as far
    rel = np.abs(pred[ok] - truth[ok]) / truth[ok]
    return float(np.mean(np.minimum(rel, 10.0))), float(np.mean(rel > 0.25))


def mixing_table(codec_names, ratio: float = 3.0, n: int = 20000) -> dict[str, float]:
    """Share of depth pairs a factor `ratio` apart whose averaged colour decodes outside [d1, d2] +-5%."""
    out = {}
    for name in codec_names:
        c = codecs.get("depth", preset=name)
        rng = np.random.default_rng(0)
        d1 = np.exp(rng.uniform(np.log(0.3), np.log(80.0 / ratio), n)).astype(np.float32)
        d2 = (d1 * ratio).astype(np.float32)
        mix = np.rint((c.encode(d1[None]).astype(np.float32) + c.encode(d2[None]).astype(np.float32)) / 2)
        back = c.decode(mix.astype(np.uint8))[0]
        out[name] = float(np.mean(~((back >= 0.95 * d1) & (back <= 1.05 * d2))))
    return out


def corruption_table(depths: list[np.ndarray], codec_names, vae=None) -> None:
    print(f"\n## decoded depth under model-like corruptions ({len(depths)} maps): AbsRel (capped at 10) / "
          f"share of pixels off by > 25%")
    print(f"{'corruption':<12}" + "".join(f"{n:>22}" for n in codec_names))
    rows = [("none", lambda x: x), *CORRUPTIONS.items()]
    if vae is not None:  # the latent model's floor: encode (mode) -> decode through the VAE
        from evals.vae_floor import round_trip

        rows.append(("vae-oracle", lambda x: round_trip(vae, [x])[0]))
    for cname, corrupt in rows:
        cells = []
        for name in codec_names:
            c = codecs.get("depth", preset=name)
            errs = np.array([_errors(d, c.decode(corrupt(np.ascontiguousarray(c.encode(d))))) for d in depths])
            cells.append(f"{errs[:, 0].mean():>11.4f} / {errs[:, 1].mean():>7.2%}")
        print(f"{cname:<12}" + "".join(f"{x:>22}" for x in cells))
    mix = mixing_table(codec_names)
    print(f"{'mix x3 pair':<12}" + "".join(f"{mix[n]:>22.2%}" for n in codec_names)
          + "   (averaged colours of depths 3x apart decoded outside [d1, d2] +-5%)")


def analytic_depths() -> list[np.ndarray]:
    from render.analytic import demo_outdoor, demo_room

    return [f(96, 128, seed=s)[0].depth for s in range(4) for f in (demo_room, demo_outdoor)]


# ---------------------------------------------------------------- part 2: training

def render(out: Path, scenes: int, size: int) -> Path:
    """Ground truth + RGB of `scenes` seeded scenes at `size` px (cheap settings), with local Ray."""
    from pipelines.ray_runtime import ray_session
    from pipelines.render_job import run_render
    from render.shard import RenderJobConfig

    cfg = RenderJobConfig(out=str(out), n_scenes=scenes, scenes_per_shard=50, width=size, height=size,
                          edit_fraction=0.0, render={"samples": 4, "denoise": False})
    with ray_session(None, None):
        run_render(cfg, progress=False)
    return out


def encode(render_dir: Path, out: Path, candidate: str, size: int) -> Path:
    """The depth task of every rendered scene with the `candidate` codec (a preset, "+canonical" for the
    canonical camera), 15% of scenes held out."""
    from encode.shard import ShardEncoder
    from encode.tasks import EncodeSettings

    camera = candidate.partition("+")[2] or "metric"
    encoder = ShardEncoder(EncodeSettings(tasks=("depth",), size=size, eval_fraction=0.15,
                                          depth_preset=_preset(candidate), depth_camera=camera))
    for tar in sorted(render_dir.glob("*.tar")):
        encoder.encode_shard(str(out), str(tar))
    return out


def train_and_score(enc: Path, run: Path, seed: int, steps: int, p_t_one: float,
                    loss_mask: bool = True, vae=None) -> dict[str, dict]:
    """Train the debug generator on the depth shards of `enc`; score one-step predictions on the eval split."""
    from evals import Evaluator
    from evals.data import iter_eval_samples, load_eval_samples, shard_paths
    from evals.reference import Baseline
    from train.checkpoint import load_generator
    from train.data import MixtureStreamFactory
    from train.loop import OptimConfig, TrainConfig, train
    from train.model import GeneratorConfig
    from train.predict import predict

    mixture = {"roots": [str(enc)], "sources": {"depth": {"weight": 1.0, "filter": {"task": "depth"}}}, "seed": seed}
    cfg = TrainConfig(out=str(run), steps=steps, batch_size=16, seed=seed, log_every=max(steps // 4, 1),
                      ckpt_every=steps, progress=False, tensorboard=False, num_workers=0, loss_mask=loss_mask,
                      optim=OptimConfig(lr=1e-3, warmup_steps=min(100, steps // 10)))
    result = train(cfg, GeneratorConfig(size="debug", p_t_one=p_t_one), MixtureStreamFactory(mixture))
    model, _ = load_generator(result.checkpoint)
    held_out = load_eval_samples([f"{enc}/depth/*.tar"], ("depth",), None)
    training = iter_eval_samples(shard_paths([f"{enc}/depth/*.tar"]), ("depth",), with_raw=False, split="train")
    ev = Evaluator(lambda b: predict(model, b, steps=1, guidance=1.0, seed=seed), held_out,
                   baseline=Baseline.fit(training, origin="training split"), prediction_region="full")
    if vae is not None:
        from evals.vae_floor import add_vae_oracle

        add_vae_oracle(ev, vae, getattr(model, "resolution", None))
    list(ev.run())
    return {p: ev.result.metrics[p]["depth"]["all"] for p in ev.result.metrics}


def training_table(args, vae=None) -> None:
    work = Path(args.out or tempfile.mkdtemp(prefix="vistune-learn-"))
    render_dir = Path(args.render) if args.render else render(work / "render", args.scenes, args.render_size)
    rows: dict[str, list[dict]] = {}
    masks = {"on": (True,), "off": (False,), "both": (True, False)}[args.loss_mask]
    for preset in args.codecs:
        enc = encode(render_dir, work / f"enc-{preset}" / f"s{args.size}", preset, args.size)
        for mask in masks:
            row = preset if mask else f"{preset} no-mask"
            for seed in range(args.seeds):
                scores = train_and_score(enc, work / f"run-{preset}-{int(mask)}-{seed}-{args.steps}", seed, args.steps,
                                         args.p_t_one, loss_mask=mask, vae=vae)
                rows.setdefault(row, []).append(scores)
                m = scores["model"]
                print(f"  {row} seed {seed}: AbsRel {m['abs_rel']:.4f} delta1 {m['delta1']:.4f} "
                      f"(per-pixel {scores['pixel_baseline']['abs_rel']:.4f} / {scores['pixel_baseline']['delta1']:.4f})",
                      flush=True)
    n_eval = int(next(iter(rows.values()))[0]["model"]["n"])
    print(f"\n## trained on depth with each codec: debug generator, {args.steps} steps of 16, p_t_one {args.p_t_one}, "
          f"loss mask {args.loss_mask} (no-mask rows: sky/invalid pixels in the loss), "
          f"one-step sampling; {n_eval} held-out scenes; mean +- std over {args.seeds} seeds")
    print(f"{'row':<26}{'AbsRel':>18}{'delta1':>18}")
    for preset, scores in rows.items():
        for who in [w for w in ("model", "oracle", "vae-oracle") if w in scores[0]]:
            a = np.array([s[who]["abs_rel"] for s in scores])
            d = np.array([s[who]["delta1"] for s in scores])
            print(f"{preset + ' ' + who:<26}{a.mean():>10.4f} +- {a.std():<6.4f}{d.mean():>10.4f} +- {d.std():<6.4f}")
    first = next(iter(rows.values()))[0]
    for who in ("pixel_baseline", "baseline"):
        print(f"{who:<26}{first[who]['abs_rel']:>10.4f}{'':>8}{first[who]['delta1']:>10.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corruptions-only", action="store_true")
    ap.add_argument("--codecs", type=lambda s: s.split(","), default=list(CODECS))
    ap.add_argument("--render", help="an existing render directory (else scenes are rendered)")
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--render-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=32, help="task sample and model resolution")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--p-t-one", type=float, default=0.5)
    ap.add_argument("--loss-mask", choices=("on", "off", "both"), default="on",
                    help="sky/invalid depth pixels out of the loss (train's data.loss_mask); both: a row each")
    ap.add_argument("--out", help="work directory (default: a new temp dir)")
    ap.add_argument("--vae", help="a VAE or pipeline directory: adds its vae-oracle row to both tables")
    args = ap.parse_args()
    vae = None
    if args.vae:
        from evals.vae_floor import load_vae

        vae = load_vae(args.vae)
    if args.corruptions_only:
        corruption_table(analytic_depths(), _presets(args.codecs), vae)
        return
    render_dir = Path(args.render) if args.render else None
    depths = analytic_depths() if render_dir is None else _rendered_depths(render_dir)
    corruption_table(depths, _presets(args.codecs), vae)
    training_table(args, vae)


def _rendered_depths(render_dir: Path, n: int = 24) -> list[np.ndarray]:
    from formats import raw_render
    from formats.shards import iter_samples

    out = []
    for tar in sorted(render_dir.glob("*.tar")):
        for sample in iter_samples(tar):
            out.append(raw_render.from_sample(sample).depth)
            if len(out) >= n:
                return out
    return out


if __name__ == "__main__":
    main()
