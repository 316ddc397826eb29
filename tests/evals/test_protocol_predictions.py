"""`vistune eval predictions=DIR` on a 480x640 NYUv2-style set, against a ZoeDepth / BTS reference computed here
(Eigen crop, 1e-3..10 m, undecodable pixels at the minimum depth, per-image mean); full-frame prediction of
checkpoints on non-square truth (480x640, 375x1242); order independence of the whole job."""

import json
import random
import types

import numpy as np
import pytest
from PIL import Image

from encode import codecs
from encode.prompts import make_prompt
from encode.resize import ResizePolicy, plan, resize_nearest
from encode.sample import TaskSample
from evals import depth as dm
from evals.job import EvalJobConfig, run_eval
from pipelines import cli
from tests.evals.samples import write_shard
from tests.evals.test_protocol import zoedepth_image

N, H, W = 3, 480, 640
METRICS = ("abs_rel", "sq_rel", "rmse", "log10", "silog", "delta1", "delta2", "delta3")


def _room(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth room-like 16-bit depth PNG in millimeters (0 = no measurement), some truth beyond 10 m."""
    rng = np.random.default_rng(100 + i)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    mm = 1500 + 9500 * y * (1 - x) + 800 * np.sin(7 * x + i) + rng.normal(0, 30, (h, w))
    mm[rng.random((h, w)) < 0.05] = 0
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _sample(key: str, depth: np.ndarray, protocol: str | None, codec, i: int) -> TaskSample:
    rng = np.random.default_rng(i)
    photo = rng.integers(0, 256, (*depth.shape, 3), dtype=np.uint8)
    meta = {"codec": codecs.spec(codec), "source": "nyuv2" if protocol else "renders", "split": "eval", "seed": i}
    if protocol:
        meta["protocol"] = protocol
    return TaskSample(key, "depth", codec.encode(depth), make_prompt("depth", i), meta, photo, {"depth": depth})


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    """Truth PNGs (as the NYUv2 export stores them), shards in two orders, and a predictions directory."""
    root = tmp_path_factory.mktemp("nyu")
    codec = codecs.get("depth")
    truth, samples = {}, []
    for i in range(N):
        mm = _room(i)
        key = f"nyu_{i:04d}"
        Image.fromarray(mm).save(root / f"{key}_gt.png")
        depth = np.where(mm > 0, mm.astype(np.float32) * np.float32(0.001), np.nan).astype(np.float32)
        truth[key] = root / f"{key}_gt.png"
        samples.append(_sample(key, depth, "nyuv2", codec, i))
    write_shard(samples, root / "shards")
    shuffled = samples[:]
    random.Random(7).shuffle(shuffled)
    write_shard(shuffled[:2], root / "shuffled", 0)
    write_shard(shuffled[2:], root / "shuffled", 1)
    preds = root / "preds"
    preds.mkdir()
    for i, s in enumerate(samples):
        rng = np.random.default_rng(50 + i)
        d = s.raw["depth"] * rng.lognormal(0.05, 0.15, (H, W))
        d[rng.random((H, W)) < 0.05] = np.nan                 # undecodable: the codec's invalid colour
        d[100:140, 200:300] = 30.0                            # beyond the 10 m cap
        Image.fromarray(codec.encode(d.astype(np.float32))).save(preds / f"{s.key}.png")
    return {"root": root, "truth": truth, "preds": preds, "codec": codec, "samples": samples}


def _reference(nyu) -> dict[str, float]:
    """ZoeDepth's evaluation: read the 16-bit truth (mm), decode each prediction, nan -> 1e-3, clip, Eigen crop."""
    per_image = []
    for key, gt_path in nyu["truth"].items():
        gt = np.asarray(Image.open(gt_path)).astype(np.float32) * np.float32(0.001)
        pred = nyu["codec"].decode(np.asarray(Image.open(nyu["preds"] / f"{key}.png").convert("RGB")))
        assert 0.01 < np.isnan(pred).mean() < 0.1   # the predictions really carry undecodable pixels
        per_image.append(zoedepth_image(gt, pred, 1e-3, 10.0, "eigen"))
    return {k: float(np.mean([m[k] for m in per_image])) for k in METRICS}


def _model_depth(out) -> dict[str, float]:
    doc = json.loads((out / "eval.json").read_text())
    return doc, doc["results"][0]["metrics"]["model"]["depth"]["all"]


def test_predictions_dir_matches_the_zoedepth_reference_and_any_order(nyu, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(["eval", f"predictions={nyu['preds']}", f"data={nyu['root'] / 'shards'}", f"out={out}"]) == 0
    doc, got = _model_depth(out)
    ref = _reference(nyu)
    for k in METRICS:
        assert got[k] == pytest.approx(ref[k], rel=1e-3), k   # the acceptance bound; measured: < 1e-9
    assert got["n"] == N and got["failed"] == 0 and 0.9 < got["coverage"] < 0.99
    res = doc["results"][0]
    assert res["info"]["prediction_region"] == "full" and res["info"]["role"] == "predictions"
    assert "Eigen" in res["protocols"]["nyuv2"] or "eigen" in res["protocols"]["nyuv2"]
    assert (out / "report.html").exists()
    # the same samples listed in another order, over two shards: every number of the job is identical
    out2 = tmp_path / "eval2"
    assert cli.main(["eval", f"predictions={nyu['preds']}", f"data={nyu['root'] / 'shuffled'}", f"out={out2}"]) == 0
    doc2, _ = _model_depth(out2)
    assert doc2["results"][0]["metrics"] == res["metrics"]


def test_missing_and_corrupt_prediction_files(nyu, tmp_path, capsys):
    preds = tmp_path / "preds"
    preds.mkdir()
    keys = [s.key for s in nyu["samples"]]
    (preds / f"{keys[0]}.png").write_bytes((nyu["preds"] / f"{keys[0]}.png").read_bytes())
    (preds / f"{keys[1]}.webp").write_bytes(b"RIFF\x00\x00not an image")     # corrupt
    (preds / "typo_0001.png").write_bytes(b"")                                # names no sample
    out = tmp_path / "eval"
    assert cli.main(["eval", f"predictions={preds}", f"data={nyu['root'] / 'shards'}", f"out={out}"]) == 0
    doc, got = _model_depth(out)
    assert got["n"] == 1 and got["failed"] == 2
    failures = {f["key"]: f for f in doc["results"][0]["failures"] if f["predictor"] == "model"}
    assert failures[keys[1]]["reason"] == "bad_prediction" and f"{keys[1]}.webp" in failures[keys[1]]["message"]
    assert failures[keys[2]]["reason"] == "missing_prediction" and keys[2] in failures[keys[2]]["message"]
    assert doc["results"][0]["info"]["unmatched_files"] == 1
    capsys.readouterr()
    assert cli.main(["eval", f"predictions={preds}", f"data={nyu['root'] / 'shards'}", f"out={out}",
                     "on_error=raise"]) == 2
    err = capsys.readouterr().err
    assert "on_error=raise" in err and (f"{keys[1]}.webp" in err or keys[2] in err)
    assert cli.main(["eval", f"predictions={tmp_path / 'nope'}", f"data={nyu['root'] / 'shards'}"]) == 2
    assert cli.main(["eval", "checkpoint=x.pt", f"predictions={preds}", f"data={nyu['root'] / 'shards'}"]) == 2
    assert cli.main(["eval", f"predictions={preds}", f"data={nyu['root'] / 'shards'}", "prediction_region=middle"]) == 2


# ---------------------------------------------------------------- checkpoints: full-frame prediction
def _letterboxed_oracle(model, batch, steps, guidance, seed, batch_size):
    """A stand-in model that answers perfectly at its square resolution: it sees the letterboxed input
    (asserted) and returns the encoded truth letterboxed the same way."""
    r = model.resolution
    out = []
    for s in batch:
        assert s.input.shape[:2] == (r, r), "the model must be given its native square input"
        h, w = s.target.shape[:2]
        out.append(resize_nearest(s.target, plan(h, w, ResizePolicy(size=r, mode="pad")), 0))
    return out


def _center_oracle(model, batch, steps, guidance, seed, batch_size):
    """Today's path: the center square of the frame, at the model's resolution."""
    r = model.resolution
    out = []
    for s in batch:
        h, w = s.target.shape[:2]
        m = min(h, w)
        sq = s.target[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]
        out.append(resize_nearest(sq, plan(m, m, ResizePolicy(size=r)), 0))
    return out


@pytest.mark.parametrize("shape, protocol, resolution", [((480, 640), "nyuv2", 64), ((375, 1242), "kitti", 32)])
def test_checkpoints_predict_the_full_frame_of_non_square_truth(tmp_path, shape, protocol, resolution):
    codec = codecs.get("depth")
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    depth = (2.0 + 5.0 * y / h + 0.5 * x / w).astype(np.float32)   # smooth: resolution loss stays small
    write_shard([_sample(f"{protocol}_0", depth, protocol, codec, 0)], tmp_path / "shards")
    model = types.SimpleNamespace(resolution=resolution)
    runs = {}
    for region, predictor in (("auto", _letterboxed_oracle), ("center", _center_oracle)):
        conf = EvalJobConfig(checkpoint=("ck/step-1.pt",), data=(str(tmp_path / "shards"),), out=str(tmp_path / region),
                             prediction_region=region, loss_draws=0, examples_per_task=1)
        summary = run_eval(conf, loader=lambda p, d, e: (model, {"model": {}}), predictor=predictor,
                           config_reader=lambda p: {"model": {}}, log=lambda _: None)
        runs[region] = summary["results"][0]
    full = runs["auto"].metrics["model"]["depth"]["all"]
    center = runs["center"].metrics["model"]["depth"]["all"]
    assert runs["auto"].info["prediction_region"] == "full" and not runs["auto"].failures
    # the full frame's whole crop is scored (not its center square), and scored well: the answer came back
    # to the right place (a misplaced letterbox would be off by a large fraction of the depth range)
    crop_px = float(dm.valid_mask(depth, dm.get_protocol(protocol)).sum())
    assert full["n_pixels"] == crop_px and full["coverage"] == 1.0
    assert full["abs_rel"] < 0.03 and full["delta1"] == 1.0
    assert center["n_pixels"] < 0.9 * crop_px   # the old region: 85.7% (NYUv2 Eigen) / 32.5% (KITTI Garg)


def test_checkpoint_eval_is_the_same_for_shuffled_shards(tmp_path):
    """train.predict seeds each answer by its position in the call: the evaluator's canonical (key)
    order makes positions, hence every number of a checkpoint's eval, independent of the shard order."""
    from tests.conftest import add_noise
    from tests.evals.samples import eval_samples
    from evals.scoring import center_square

    def positional(model, batch, steps, guidance, seed, batch_size):  # noise seeded by position, as train.predict
        return [add_noise(s.target[center_square(s.target.shape)], 20.0, seed=i) for i, s in enumerate(batch)]

    samples = eval_samples(2)
    shuffled = samples[:]
    random.Random(11).shuffle(shuffled)
    write_shard(samples, tmp_path / "a")
    write_shard(shuffled[:7], tmp_path / "b", 0)
    write_shard(shuffled[7:], tmp_path / "b", 1)
    metrics = []
    for data in ("a", "b"):
        conf = EvalJobConfig(checkpoint=("ck/step-1.pt",), data=(str(tmp_path / data),), out=str(tmp_path / f"out_{data}"),
                             loss_draws=0, examples_per_task=1, batch_size=4)
        summary = run_eval(conf, loader=lambda p, d, e: (types.SimpleNamespace(resolution=24), {"model": {}}),
                           predictor=positional, config_reader=lambda p: {"model": {}}, log=lambda _: None)
        metrics.append(json.loads((tmp_path / f"out_{data}" / "eval.json").read_text())["results"][0]["metrics"])
    assert set(metrics[0]["model"]) >= {"depth", "normals", "semantic", "instance", "referring", "t2i", "edit"}
    assert metrics[0] == metrics[1]
