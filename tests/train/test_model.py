import pytest
import torch

from train.model import GeneratorConfig, build_generator
from train.model.dit import sincos_2d
from train.model.text import BOS, EOS, PAD, ByteTokenizer


def _inputs(b=3, r=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    image = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    has = torch.tensor([True, False, True][:b])
    return target, image, has, ["estimate depth", "a red square", "draw normals"][:b]


def test_byte_tokenizer_frames_truncates_and_masks():
    ids, mask = ByteTokenizer(8)(["ab", "é", "0123456789"])
    assert ids[0, :4].tolist() == [BOS, ord("a") + 3, ord("b") + 3, EOS] and ids[0, 4:].eq(PAD).all()
    assert ids[1, 1:3].tolist() == [0xC3 + 3, 0xA9 + 3]  # utf-8 bytes of é
    assert ids[2, -1] == EOS and mask[2].all() and mask[0].sum() == 4  # truncated to max_len, still framed
    ids, mask = ByteTokenizer(64)(["a" * 20, "b"])
    assert ids.shape == (2, 32) and mask.sum(1).tolist() == [22, 3]  # padded to the longest, rounded to 16


def test_config_validation_names_bad_value_and_allowed_set():
    with pytest.raises(ValueError, match=r"model.size 'huge' not in \['debug', 'small', 'base', 'large'\]"):
        GeneratorConfig(size="huge")
    with pytest.raises(ValueError, match="unknown model keys \\['widht'\\]"):
        build_generator({"size": "debug", "widht": 3})
    with pytest.raises(ValueError, match="multiple of patch"):
        GeneratorConfig(size="debug", resolution=30).build()


def test_loss_is_finite_and_every_parameter_gets_a_gradient():
    model = GeneratorConfig(size="debug", p_drop_text=0.5, p_drop_image=0.5).build()
    out = model(*_inputs(), generator=torch.Generator().manual_seed(1))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"]) and out["per_sample"].shape == (3,)
    out["loss"].backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_loss_randomness_comes_only_from_the_generator():
    model = GeneratorConfig(size="debug").build()
    a = model(*_inputs(), generator=torch.Generator().manual_seed(5))["loss"]
    torch.manual_seed(123)  # the global RNG must not matter
    b = model(*_inputs(), generator=torch.Generator().manual_seed(5))["loss"]
    c = model(*_inputs(), generator=torch.Generator().manual_seed(6))["loss"]
    assert a.item() == b.item() and a.item() != c.item()


def test_generate_shapes_guidance_and_wrong_resolution():
    torch.manual_seed(0)
    model = GeneratorConfig(size="debug").build().eval()
    for p in model.dit.proj_out.parameters():  # the zero-initialized head predicts a constant: open it
        torch.nn.init.normal_(p, std=0.1)
    for block in model.dit.blocks:
        torch.nn.init.normal_(block.ada[1].weight, std=0.1)
    _, image, has, prompts = _inputs()
    noise = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    x1 = model.generate(image, has, prompts, steps=3, guidance=1.0, noise=noise)
    x1b = model.generate(image, has, prompts, steps=3, guidance=1.0, noise=noise)
    x3 = model.generate(image, has, prompts, steps=3, guidance=3.0, noise=noise)
    x3i = model.generate(image, has, prompts, steps=3, guidance=3.0, noise=noise, image_guidance=1.5)
    assert x1.shape == (3, 3, 32, 32) and x1.min() >= -1 and x1.max() <= 1
    assert torch.equal(x1, x1b)
    assert (x1 - x3).abs().max() > 1e-3 and (x3 - x3i).abs().max() > 1e-3
    with pytest.raises(ValueError, match="built for 32x32 images got 64x64"):
        model.generate(torch.zeros(1, 3, 64, 64), has[:1], prompts[:1], 1, 1.0, torch.zeros(1, 3, 64, 64))


def test_sampling_grid_runs_from_noise_to_image_and_shift_favors_noise():
    model = GeneratorConfig(size="debug", sample_shift=3.0).build()
    t = model.timesteps(4)
    assert t[0] == 1.0 and t[-1] == 0.0 and bool((t[1:] < t[:-1]).all())
    assert t[2] > 0.5  # the midpoint moves toward t = 1 (noise)


def test_sincos_positions_are_distinct():
    pos = sincos_2d(8, 64)
    assert pos.shape == (64, 64) and torch.cdist(pos, pos).add(torch.eye(64)).min() > 0.1


def test_pretrained_text_encoder_from_a_local_dir(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz")
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(config).save_pretrained(tmp_path)
    model = GeneratorConfig(size="debug", text_pretrained=str(tmp_path), text_max_len=16).build()
    out = model(*_inputs(), generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    trainable = {n for n, p in model.named_parameters()}
    assert "text.proj.weight" in trainable and not any("bert" in n or "encoder.layer" in n for n in trainable)
    assert model.text.proj.weight.grad is not None
    with pytest.raises(ValueError, match="cannot load a pretrained text encoder"):
        GeneratorConfig(size="debug", text_pretrained=str(tmp_path / "missing")).build()


def test_conv_stem_and_head_start_closed_and_all_train():
    """model.conv adds a full-resolution conv stem and residual head: a fresh model still predicts a
    constant (the head's last conv and the transformer's output start at zero), every parameter gets a
    gradient once the output opens, and a config without the key (older checkpoints) builds none."""
    model = GeneratorConfig(size="debug", conv=8).build()
    assert model.dit.stem[0].out_channels == 8 and model.dit.head[-1].out_channels == 3
    assert not hasattr(GeneratorConfig(size="debug").build().dit, "stem")
    assert build_generator({"size": "debug"}).cfg.resolved().conv == 0
    target, image, has, prompts = _inputs()
    tokens, mask = model._encode_text(prompts)
    t = torch.full((3,), 0.5)
    out = model.dit(target, t, image, has, tokens[:-1], mask[:-1])
    assert torch.equal(out, torch.zeros_like(out))
    for p in model.dit.proj_out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    loss = model(target, image, has, prompts, generator=torch.Generator().manual_seed(1))["loss"]
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert model.dit.head[-1].weight.grad.abs().sum() > 0


def test_input_gate_makes_the_one_step_answer_independent_of_the_noise():
    """With model.input_gate the denoiser sees (1 - t) x_t: a one-step sample (t = 1) is the same for
    any starting noise, while without it (and at t < 1 with it) the noisy input still matters."""
    torch.manual_seed(0)
    outs = {}
    for gate in (False, True):
        model = GeneratorConfig(size="debug", conv=4, input_gate=gate).build().eval()
        for p in list(model.dit.proj_out.parameters()) + list(model.dit.head[-1].parameters()):
            torch.nn.init.normal_(p, std=0.1)
        for block in model.dit.blocks:
            torch.nn.init.normal_(block.ada[1].weight, std=0.1)
        _, image, has, prompts = _inputs()
        a, b = (torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
        one = [model.generate(image, has, prompts, steps=1, guidance=1.0, noise=n) for n in (a, b)]
        two = [model.generate(image, has, prompts, steps=2, guidance=1.0, noise=n) for n in (a, b)]
        outs[gate] = ((one[0] - one[1]).abs().max().item(), (two[0] - two[1]).abs().max().item())
    assert outs[True][0] < 1e-5 and outs[True][1] > 1e-3  # x - (x - pred) = pred up to rounding
    assert outs[False][0] > 1e-3


def test_repeated_prompts_are_encoded_once_with_the_same_result():
    torch.manual_seed(0)
    model = GeneratorConfig(size="debug").build()
    prompts = ["depth please", "normals", "depth please", "", "a much longer prompt " * 4, "normals"]
    tokens, mask = model._encode_text(prompts)
    assert tokens.shape[0] == mask.shape[0] == len(prompts) + 1
    for i, text in enumerate(prompts + [""]):
        alone, alone_mask = model.text([text])
        n = int(alone_mask.sum())
        assert mask[i].sum() == n
        torch.testing.assert_close(tokens[i, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
