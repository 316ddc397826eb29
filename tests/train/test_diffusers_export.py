"""`vistune export` and `vistune eval` on model.kind=diffusers checkpoints (tiny real-class pipelines)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from pipelines.cli import main  # noqa: E402
from tests.train.diffusers_fixtures import write_sd_pipeline  # noqa: E402
from train import checkpoint as ckpt  # noqa: E402
from train.data import ShardListStream  # noqa: E402
from train.loop import OptimConfig, TrainConfig, train  # noqa: E402
from train.model import GeneratorConfig  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory, task_shards):
    """Two-step LoRA runs on a 4-channel SD base (conv_in widened) and on an InstructPix2Pix base."""
    root = tmp_path_factory.mktemp("export")
    factory = ShardListStream([str(p) for p in task_shards])
    out = {}
    for name, ip2p in (("sd", False), ("ip2p", True)):
        base = write_sd_pipeline(root / f"{name}-base", instruct_pix2pix=ip2p)
        cfg = TrainConfig(out=str(root / name), steps=2, batch_size=2, progress=False, tensorboard=False,
                          optim=OptimConfig(lr=3e-3, warmup_steps=0))
        model = GeneratorConfig(kind="diffusers", path=str(base), train="lora", lora_rank=4)
        out[name] = train(cfg, model, factory).checkpoint
    return out


def _unet_io(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 8, 16, 16, generator=g), torch.tensor([400])


def test_export_writes_an_instruct_pix2pix_pipeline_that_loads_and_runs(runs, tmp_path, capsys):
    from diffusers import DiffusionPipeline, StableDiffusionInstructPix2PixPipeline
    from PIL import Image

    out = tmp_path / "exported"
    assert main(["export", f"checkpoint={runs['sd']}", f"out={out}"]) == 0
    assert "StableDiffusionInstructPix2PixPipeline" in capsys.readouterr().out
    pipe = DiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert isinstance(pipe, StableDiffusionInstructPix2PixPipeline) and pipe.unet.config.in_channels == 8
    assert not any("lora" in k for k in pipe.unet.state_dict())  # fused and unloaded
    # the exported UNet is the checkpoint's (EMA) model with its adapters fused
    model, _ = ckpt.load_generator(runs["sd"])
    x, t = _unet_io()
    hidden = model.encode_text(["a red square"])[:-1]
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t, hidden).sample, model.unet(x, t, hidden).sample, rtol=1e-4, atol=1e-4)
    image = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))
    result = pipe("estimate depth", image=image, num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert result.shape == (1, 32, 32, 3) and np.isfinite(result).all()


def test_lora_only_export_reloads_onto_the_base_and_a_widened_model_refuses(runs, tmp_path, capsys):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    out = tmp_path / "lora"
    assert main(["export", f"checkpoint={runs['ip2p']}", f"out={out}", "--lora-only"]) == 0
    assert [p.name for p in out.iterdir()] == ["pytorch_lora_weights.safetensors"]
    model, config = ckpt.load_generator(runs["ip2p"])
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(config["model"]["path"], local_files_only=True)
    pipe.load_lora_weights(str(out))
    x, t = _unet_io(1)
    hidden = model.encode_text(["a red square"])[:-1]
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t, hidden).sample, model.unet(x, t, hidden).sample, rtol=1e-5, atol=1e-5)
    assert main(["export", f"checkpoint={runs['sd']}", f"out={tmp_path / 'no'}", "--lora-only"]) == 2
    assert "widened" in capsys.readouterr().err
    assert main(["export", f"checkpoint={runs['sd']}", f"out={out}"]) == 2  # out is not empty


def test_vistune_eval_scores_a_diffusers_checkpoint_at_its_native_resolution(runs, tmp_path, monkeypatch):
    from tests.evals.samples import eval_samples, write_shard
    from train import predict as predict_mod

    shard = write_shard(eval_samples(1), tmp_path / "shards")
    sizes = []
    real = predict_mod.predict

    def spy(model, samples, *a, **kw):
        out = real(model, samples, *a, **kw)
        sizes.extend(p.shape for p in out)
        return out

    monkeypatch.setattr(predict_mod, "predict", spy)
    out = tmp_path / "eval"
    rc = main(["eval", f"checkpoint={runs['sd']}", f"data={shard}", f"out={out}", "steps=2", "tasks=[depth,t2i]",
               "batch_size=4", "loss_draws=0", "examples_per_task=1"])
    assert rc == 0
    report = json.loads((out / "eval.json").read_text())
    assert "depth" in json.dumps(report) and "t2i" in json.dumps(report)
    assert sizes and set(sizes) == {(32, 32, 3)}  # the tiny pipeline's native resolution (16 px latents x 2)
    # no eval.vae: the latent model's own VAE gives the vae-oracle row, next to the codec oracle
    metrics = report["results"][0]["metrics"]
    vae_row, oracle = metrics["vae-oracle"]["depth"]["all"], metrics["oracle"]["depth"]["all"]
    assert vae_row["n"] == oracle["n"] > 0 and vae_row["abs_rel"] > oracle["abs_rel"]
