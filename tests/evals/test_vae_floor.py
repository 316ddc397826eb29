"""The VAE floor (evals/vae_floor.py): identity = codec oracle exactly; a tiny random-weight
AutoencoderKL saved and loaded from disk runs end to end and is worse; bad VAE dirs are named."""

import json
import math

import numpy as np
import pytest
import torch

from encode.codecs.depth import relative_error_bound
from evals import depth as depth_m
from evals.evaluator import Evaluator
from evals.scoring import codec_of
from evals.vae_floor import (EDGE_RATIO, VaeError, VaeRoundTrip, add_vae_oracle, codec_floor, depth_edges,
                             edge_abs_rel, load_vae, resolve_vae_dir, round_trip, vae_floor)

diffusers = pytest.importorskip("diffusers")


class IdentityAutoencoder:
    """encode and decode are the identity: the round trip loses nothing but 8-bit rounding (none)."""

    def encode(self, x):
        return x

    def decode(self, z):
        return z


def tiny_vae(seed: int = 0, sample_size: int = 32):
    """A 2-block AutoencoderKL (x2 downsampling), the shape of diffusers' own AutoencoderKL tests."""
    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                                   down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                   latent_channels=4, norm_num_groups=4, sample_size=sample_size).eval()


@pytest.fixture(scope="module")
def vae_pipeline_dir(tmp_path_factory):
    """A pipeline-like directory: model_index.json and the VAE saved with save_pretrained under vae/."""
    root = tmp_path_factory.mktemp("pipe")
    tiny_vae().save_pretrained(root / "vae")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                       "vae": ["diffusers", "AutoencoderKL"]}))
    return root


def _close(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for task in a:
        for k, v in a[task].items():
            assert (math.isnan(v) and math.isnan(b[task][k])) or v == b[task][k], (task, k, v, b[task][k])


def test_identity_autoencoder_gives_exactly_the_codec_oracle(samples):
    ident = vae_floor(IdentityAutoencoder(), samples, resolution=None)
    _close(ident, codec_floor(samples))  # every metric, bit for bit
    depth = ident["depth"]
    bound = relative_error_bound(codec_of(next(s for s in samples if s.task == "depth")), 0.1, 200)
    assert depth["abs_rel"] <= bound and depth["edge_abs_rel"] <= bound and depth["delta1"] == 1.0
    assert ident["normals"]["mean_deg"] <= 0.25  # the normals codec's 8-bit bound
    assert ident["semantic"]["miou"] == 1.0 and ident["semantic"]["wrong_colour"] == 0.0
    assert ident["semantic"]["off_palette"] == 0.0
    assert ident["instance"]["AP"] == 1.0 and ident["referring"]["giou"] == 1.0


def test_round_trip_pads_to_the_downsampling_factor_and_crops_back():
    vae = tiny_vae()
    images = [np.random.default_rng(i).integers(0, 256, (9, 13, 3), dtype=np.uint8) for i in range(3)]
    out = round_trip(vae, images, batch_size=2)
    assert [o.shape for o in out] == [(9, 13, 3)] * 3 and all(o.dtype == np.uint8 for o in out)
    assert all(np.array_equal(a, b) for a, b in zip(round_trip(IdentityAutoencoder(), images), images))


@pytest.mark.parametrize("name", ["AutoencoderKLQwenImage", "AutoencoderTiny"])
def test_other_autoencoder_classes_load_from_disk_and_round_trip(name, tmp_path):
    """Qwen-Image's video VAE (one frame of a (B, C, T, H, W) input) and TAESD's AutoencoderTiny (`latents`)."""
    torch.manual_seed(0)
    if name == "AutoencoderTiny":
        model = diffusers.AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                                          num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    else:
        model = diffusers.AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1,
                                                 temperal_downsample=[False], latents_mean=[0.0] * 4,
                                                 latents_std=[1.0] * 4)
    model.save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path)  # a folder holding only vae/ (as `hf download --include 'vae/*'` leaves it)
    images = [np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)]
    out = round_trip(vae, images)
    assert type(vae).__name__ == name and out[0].shape == (9, 13, 3) and out[0].dtype == np.uint8


def test_native_resolution_answers_for_the_centre_square(samples):
    fn = VaeRoundTrip(tiny_vae(sample_size=24), "native")
    assert fn.resolution == 24 and fn.region == "center_square"
    preds = fn(samples[:3])
    assert [p.shape for p in preds] == [(24, 24, 3)] * 3
    assert VaeRoundTrip(IdentityAutoencoder()).region == "full"  # no sample_size: each target at its own size


def test_tiny_autoencoderkl_from_disk_runs_end_to_end_and_is_worse_than_identity(samples, vae_pipeline_dir):
    vae = load_vae(vae_pipeline_dir)  # the pipeline dir: its vae/ subfolder, local files only
    assert isinstance(vae, diffusers.AutoencoderKL) and not vae.training
    assert next(vae.parameters()).dtype == torch.float32
    floor = vae_floor(vae, samples, batch_size=3)
    ident = vae_floor(IdentityAutoencoder(), samples, resolution=None)
    for task, metrics in floor.items():
        assert metrics["n"] + metrics["failed"] == ident[task]["n"], task  # every sample scored or counted
    d = floor["depth"]
    assert all(math.isfinite(d[k]) for k in ("abs_rel", "delta1", "edge_abs_rel"))
    assert d["abs_rel"] > 10 * ident["depth"]["abs_rel"] and d["delta1"] < 1.0
    assert math.isfinite(floor["normals"]["mean_deg"]) and floor["normals"]["mean_deg"] > ident["normals"]["mean_deg"]
    assert floor["semantic"]["miou"] < 1.0 and floor["semantic"]["wrong_colour"] > 0.0
    assert floor["instance"]["AP"] < 1.0 and floor["referring"]["giou"] < 1.0
    # the same weights, loaded from the VAE dir itself, give the same numbers
    _close(vae_floor(load_vae(vae_pipeline_dir / "vae"), samples, batch_size=3), floor)


def test_missing_or_incomplete_vae_dirs_name_what_is_missing(tmp_path, vae_pipeline_dir):
    with pytest.raises(VaeError, match="does not exist"):
        resolve_vae_dir(tmp_path / "nope")
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                       "vae": ["diffusers", "AutoencoderKL"]}))
    with pytest.raises(VaeError, match="lacks its vae/ subfolder"):
        resolve_vae_dir(pipe)
    (pipe / "vae").mkdir()
    (pipe / "vae" / "config.json").write_text((vae_pipeline_dir / "vae" / "config.json").read_text())
    with pytest.raises(VaeError, match="no weights .*diffusion_pytorch_model.safetensors"):
        load_vae(pipe)
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(VaeError, match="names no `vae` component"):
        resolve_vae_dir(pipe)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VaeError, match="no config.json: neither a VAE directory"):
        resolve_vae_dir(empty)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    (sharded / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors"}}))
    with pytest.raises(VaeError, match="missing weight shard"):
        resolve_vae_dir(sharded)
    unet = tmp_path / "unet"
    unet.mkdir()
    (unet / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (unet / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(VaeError, match="'UNet2DModel' is not a diffusers autoencoder"):
        load_vae(unet)


def test_depth_edges_are_the_discontinuities_of_the_truth():
    d = np.full((6, 8), 2.0, np.float32)
    d[:, 4:] = 2.0 * EDGE_RATIO * 1.01  # a step just above the ratio between columns 3 and 4
    assert np.array_equal(np.where(depth_edges(d).any(0))[0], [3, 4])
    d[:, 4:] = 2.0 * EDGE_RATIO * 0.99  # just below: a smooth surface
    assert not depth_edges(d).any()
    d[:, 4:] = np.inf  # sky beyond an object: an edge on the object's side only
    assert np.array_equal(np.where(depth_edges(d).any(0))[0], [3])
    d[:, 4:] = np.nan  # invalid neighbours are ignored
    assert not depth_edges(d).any()


def test_edge_abs_rel_scores_only_edge_pixels():
    truth = np.full((6, 8), 2.0)
    truth[:, 4:] = 4.0
    pred = truth.copy()
    pred[:, 3] *= 1.1    # 10% off on the near side of the edge
    pred[:, 4] *= 0.8    # 20% off on the far side
    pred[:, 0] = 100.0   # far from the edge: not counted
    protocol = depth_m.get_protocol("vistune")
    value, share = edge_abs_rel(pred, truth, protocol, depth_m.valid_mask(truth, protocol))
    assert value == pytest.approx(0.15) and share == pytest.approx(2 / 8)
    assert edge_abs_rel(pred, np.full((6, 8), 2.0), protocol, np.ones((6, 8), bool)) is None


def test_vae_oracle_row_joins_the_reference_rows(samples, vae_pipeline_dir):
    ev = Evaluator(lambda b: [s.target for s in b], samples, prediction_region="center_square")
    add_vae_oracle(ev, vae_pipeline_dir, resolution=16)
    list(ev.run())
    assert {"model", "oracle", "vae-oracle", "baseline", "pixel_baseline"} == set(ev.result.metrics)
    vae_d, oracle_d = ev.result.metrics["vae-oracle"]["depth"]["all"], ev.result.metrics["oracle"]["depth"]["all"]
    assert vae_d["n"] == oracle_d["n"] and vae_d["abs_rel"] > oracle_d["abs_rel"]
    full = Evaluator(lambda b: [s.target for s in b], samples, prediction_region="full")  # 36 x 48 frames
    add_vae_oracle(full, vae_pipeline_dir, resolution=16)
    list(full.run())
    for task, rows in full.result.metrics["vae-oracle"].items():  # answered for the whole frame, aspect kept
        assert rows["all"]["failed"] == 0 and rows["all"]["n"] == full.result.metrics["oracle"][task]["all"]["n"]
    bf16 = tiny_vae().to(torch.bfloat16)  # a latent generator's own (bf16) VAE object: used in fp32, left as it is
    direct = Evaluator(lambda b: [s.target for s in b], samples, prediction_region="center_square")
    add_vae_oracle(direct, bf16, resolution=16)
    list(direct.run())
    got = direct.result.metrics["vae-oracle"]["depth"]["all"]
    assert got["n"] == vae_d["n"] and math.isfinite(got["abs_rel"]) and next(bf16.parameters()).dtype == torch.bfloat16
    plain = Evaluator(lambda b: [s.target for s in b], samples, prediction_region="center_square")
    add_vae_oracle(plain, None)  # eval.vae unset: nothing added
    later = Evaluator(lambda b: [s.target for s in b], samples, references=False)
    add_vae_oracle(later, vae_pipeline_dir)  # a later checkpoint's evaluator holds no reference rows
    assert "vae-oracle" not in plain.predictors and "vae-oracle" not in later.predictors


def test_eval_job_with_eval_vae_reports_the_row_and_checks_the_dir_first(eval_shard, vae_pipeline_dir, tmp_path):
    from evals.job import EvalJobConfig, run_eval

    class Model:
        resolution = 16

    def predictor(model, batch, steps, guidance, seed, batch_size):
        from encode.resize import fit_square
        return [fit_square(s.target, 16, nearest=True) for s in batch]

    conf = EvalJobConfig(checkpoint=("step-00000010.pt",), data=(str(eval_shard),), out=str(tmp_path / "out"),
                         vae=str(vae_pipeline_dir), loss_draws=0, examples_per_task=1)
    summary = run_eval(conf, loader=lambda p, d, e: (Model(), {"model": {}}), predictor=predictor,
                       config_reader=lambda p: {"model": {}}, log=lambda _: None)
    doc = json.loads(summary["json"].read_text())
    assert "vae-oracle" in doc["results"][0]["metrics"]
    from pipelines.eval_job import describe
    assert "vae-oracle" in describe(summary).splitlines()[0]
    read = []
    bad = EvalJobConfig(checkpoint=("c.pt",), data=(str(eval_shard),), vae=str(tmp_path / "missing"))
    with pytest.raises(VaeError, match="does not exist"):
        run_eval(bad, config_reader=lambda p: read.append(p) or {"model": {}}, log=lambda _: None)
    assert read == []  # before any checkpoint is read


def test_eval_job_adds_a_latent_models_own_vae_row_and_eval_vae_wins(eval_shard, vae_pipeline_dir, tmp_path):
    """Without eval.vae a latent model's own VAE (`model.frozen.vae`, as model.kind=diffusers holds it) gives the
    row: an identity autoencoder at the model's 16 px answers exactly what the model answers; eval.vae given
    names the VAE instead; a pixel model gets no row."""
    from types import SimpleNamespace

    from encode.resize import fit_square
    from evals.job import EvalJobConfig, run_eval

    class Latent:
        resolution = 16
        frozen = SimpleNamespace(vae=IdentityAutoencoder())

    class Pixel:
        resolution = 16

    def predictor(model, batch, steps, guidance, seed, batch_size):
        return [fit_square(s.target, 16, nearest=True) for s in batch]

    def metrics(model, **kw):
        conf = EvalJobConfig(checkpoint=("step-00000010.pt",), data=(str(eval_shard),), loss_draws=0,
                             examples_per_task=0, out=str(tmp_path / f"out-{len(list(tmp_path.iterdir()))}"), **kw)
        summary = run_eval(conf, loader=lambda p, d, e: (model, {"model": {}}), predictor=predictor,
                           config_reader=lambda p: {"model": {}}, log=lambda _: None)
        return json.loads(summary["json"].read_text())["results"][0]["metrics"]

    own = metrics(Latent())
    assert own["vae-oracle"] == own["model"]  # every task, source and number
    given = metrics(Latent(), vae=str(vae_pipeline_dir))
    assert given["model"] == own["model"]
    assert given["vae-oracle"]["depth"]["all"]["abs_rel"] > own["vae-oracle"]["depth"]["all"]["abs_rel"]
    assert "vae-oracle" not in metrics(Pixel())
