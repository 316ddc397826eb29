"""SAM and Mask2Former backends: real transformers loading and post-processing, on tiny random-weight
checkpoints that the tests build and save (no hub access)."""

import numpy as np
import pytest

from annotate import labelers
from annotate.labelers.base import MissingWeightsError
from annotate.labelers.sam import point_grid

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CLASSES = {0: "cup", 1: "plate", 2: "table"}


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    from transformers import (SamConfig, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
                              SamVisionConfig)

    try:
        from transformers import SamImageProcessorPil as ImageProcessor
    except ImportError:  # transformers < 5
        from transformers import SamImageProcessor as ImageProcessor
    torch.manual_seed(0)
    vision = SamVisionConfig(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                             image_size=128, patch_size=16, window_size=4, global_attn_indexes=[1], mlp_dim=64,
                             num_pos_feats=16)
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                   iou_head_hidden_dim=32)
    config = SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                       mask_decoder_config=decoder.to_dict())
    path = tmp_path_factory.mktemp("tiny-sam")
    SamModel(config).save_pretrained(path)
    SamProcessor(image_processor=ImageProcessor(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128},
                                                mask_size={"longest_edge": 32},
                                                mask_pad_size={"height": 32, "width": 32})).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mask2former_dir(tmp_path_factory):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    try:
        from transformers import Mask2FormerImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Mask2FormerImageProcessor as ImageProcessor
    torch.manual_seed(0)
    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                      window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=64, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                               dim_feedforward=64, num_queries=10, id2label=CLASSES,
                               label2id={v: k for k, v in CLASSES.items()})
    path = tmp_path_factory.mktemp("tiny-mask2former")
    Mask2FormerForUniversalSegmentation(config).save_pretrained(path)
    ImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def oneformer_dir(tmp_path_factory):
    """Tiny OneFormer with a tiny CLIP tokenizer; its class-info json sits in the checkpoint directory."""
    import json

    from transformers import CLIPTokenizer, OneFormerConfig, OneFormerForUniversalSegmentation, OneFormerProcessor, \
        SwinConfig

    try:
        from transformers import OneFormerImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import OneFormerImageProcessor as ImageProcessor
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-oneformer")
    (path / "class_info.json").write_text(json.dumps({str(i): {"name": n, "isthing": 1} for i, n in CLASSES.items()}))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch], vocab[ch + "</w>"] = len(vocab), len(vocab) + 1
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"))
    image_processor = ImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, repo_path=str(path),
                                     class_info_file="class_info.json", num_text=4, do_reduce_labels=False)
    OneFormerProcessor(image_processor=image_processor, tokenizer=tokenizer, max_seq_length=16,
                       task_seq_length=16).save_pretrained(path)
    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                      window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = OneFormerConfig(backbone_config=swin, num_queries=10, hidden_dim=32, conv_dim=32, mask_dim=32,
                             encoder_layers=1, decoder_layers=2, dim_feedforward=64, num_attention_heads=2,
                             text_encoder_width=32, text_encoder_context_length=16, text_encoder_num_layers=1,
                             text_encoder_vocab_size=len(vocab), text_encoder_proj_layers=1, text_encoder_n_ctx=4,
                             max_seq_len=16, task_seq_len=16, num_classes=3, id2label=CLASSES,
                             label2id={v: k for k, v in CLASSES.items()}, encoder_feedforward_dim=64, is_training=False)
    OneFormerForUniversalSegmentation(config).save_pretrained(path)
    return path


@pytest.mark.parametrize("name", ["sam", "mask2former", "oneformer"])
def test_missing_weights_say_where_to_put_them(name, tmp_path):
    with pytest.raises(MissingWeightsError, match=f"labelers.{name}.weights.*save_pretrained"):
        labelers.get(name)
    with pytest.raises(MissingWeightsError, match=f"{tmp_path / 'nothing'}.*has no config.json"):
        labelers.get(name, weights=str(tmp_path / "nothing"))


def test_wrong_checkpoint_kind_is_named(sam_dir, mask2former_dir):
    with pytest.raises(ValueError, match="model_type 'mask2former'; supported: \\['sam', 'sam_hq'\\]"):
        labelers.get("sam", weights=str(mask2former_dir))
    with pytest.raises(ValueError, match="model_type 'sam', expected 'mask2former'"):
        labelers.get("mask2former", weights=str(sam_dir))


def test_point_grid_is_sams_cell_centers():
    grid = point_grid(4)
    assert grid.shape == (16, 2) and grid.min() == 0.125 and grid.max() == 0.875
    np.testing.assert_allclose(grid[:4, 0], [0.125, 0.375, 0.625, 0.875])


def test_sam_automatic_masks_from_a_saved_checkpoint(sam_dir, photos):
    sam = labelers.get("sam", weights=str(sam_dir), points_per_side=4, points_per_batch=5, pred_iou_thresh=-1.0,
                       max_candidates=40)
    images = [photos["coffee"][:90, :120], photos["chelsea"][:60, :100]]
    results = sam.label(images)
    assert len(results) == 2
    for rgb, result in zip(images, results):
        assert 0 < len(result.instances) <= 40  # 16 points x 3 masks, best 40 kept (empty masks dropped)
        for inst in result.instances:
            assert inst.mask.shape == rgb.shape[:2] and inst.mask.dtype == bool and inst.mask.any()
            assert 0.0 <= inst.score <= 1.0 and 0.0 <= inst.stability <= 1.0 and inst.class_name == "object"
        scores = [i.score for i in result.instances]
        assert scores == sorted(scores, reverse=True)
    strict = labelers.get("sam", weights=str(sam_dir), points_per_side=4, pred_iou_thresh=2.0)
    assert strict.label(images[:1])[0].instances == []  # nothing predicts IoU > 2: the pre-filter works
    assert labelers.describe(sam)["weights"].startswith(str(sam_dir))


def test_mask2former_from_a_saved_checkpoint(mask2former_dir, photos):
    m2f = labelers.get("mask2former", weights=str(mask2former_dir), threshold=0.0, overlap_threshold=0.0,
                       mask_threshold=0.0, semantic="model")
    assert m2f.classes == ["cup", "plate", "table"]
    images = [photos["coffee"][:90, :120], photos["chelsea"][:60, :100], photos["coffee"][90:180, :120]]
    results = m2f.label(images)
    for rgb, result in zip(images, results):
        assert result.semantic.shape == rgb.shape[:2] and 1 <= result.semantic.min() <= result.semantic.max() <= 3
        assert result.instances, "threshold 0 keeps every real-class query"
        cover = np.zeros(rgb.shape[:2], int)
        for inst in result.instances:
            assert inst.mask.shape == rgb.shape[:2] and inst.class_name in m2f.classes
            cover += inst.mask
        assert cover.max() == 1  # panoptic: each pixel belongs to at most one segment


def test_panoptic_recipe_on_known_logits(mask2former_dir):
    """The post-processing alone, on hand-made query outputs: classes, no-object, low score, overlap, padding."""
    m2f = labelers.get("mask2former", weights=str(mask2former_dir), threshold=0.5, overlap_threshold=0.8)
    big = 12.0
    class_logits = torch.full((5, 4), -big)
    class_logits[0, 0] = big  # cup, confident
    class_logits[1, 1] = big  # plate, confident
    class_logits[2, 3] = big  # "no object"
    class_logits[3] = torch.tensor([0.0, 0.0, 0.5, 0.0])  # table, but a low score (softmax 0.35)
    class_logits[4, 0] = big  # a second cup hidden under the plate: loses its pixels, dropped
    masks = torch.full((5, 8, 12), -big)  # logits at 1/4 of a 32 x 48 padded input
    masks[0, 0:4, 0:4] = big
    masks[1, 4:8, 4:8] = big
    masks[2, :, :] = big
    masks[3, 0:4, 4:8] = big
    masks[4, 4:8, 4:7] = big
    masks[:, :, 8:] = big  # garbage in the padding (columns 32..47 of the padded input)
    valid = torch.zeros(32, 48, dtype=torch.bool)
    valid[:, :32] = True  # the image was resized to 32 x 32, then padded to 48 wide
    result = m2f._panoptic(class_logits, masks, valid, (64, 64))
    names = sorted(i.class_name for i in result.instances)
    assert names == ["cup", "plate"]
    cup = next(i for i in result.instances if i.class_name == "cup")
    plate = next(i for i in result.instances if i.class_name == "plate")
    assert cup.mask[:28, :28].all() and not cup.mask[36:, :].any()  # top-left quadrant (image coords x2)
    assert plate.mask[36:, 36:60].all() and not plate.mask[:28, :].any()
    assert not plate.mask[:, 60:].any() or plate.mask[36:, 60:].all()  # nothing from the padding leaks in
    assert cup.score > 0.99 and cup.stability > 0.9
    assert result.semantic is None  # semantic="instances": painted by the annotator


def test_annotate_unit_with_a_transformers_backend(mask2former_dir, tmp_path, photos):
    from formats import raw_label as raw
    from annotate.imageio import DecodePolicy
    from annotate.process import AnnotateSettings, UnitStats, annotate_unit
    from annotate.sources import plan_units

    from .conftest import encode

    for name in ("astronaut", "coffee"):
        (tmp_path / f"{name}.png").write_bytes(encode(photos[name], "PNG"))
    m2f = labelers.get("mask2former", weights=str(mask2former_dir), threshold=0.0, overlap_threshold=0.0,
                       mask_threshold=0.0)
    settings = AnnotateSettings(decode=DecodePolicy(size=96))
    (unit,) = plan_units(str(tmp_path))
    stats = UnitStats()
    samples = list(annotate_unit(unit, m2f, settings, stats))
    assert stats.written == 2 and stats.candidates > 0
    label = raw.from_sample({"__key__": samples[0].key, **samples[0].files})
    assert label.meta["class_table"] == ["unlabeled", "cup", "plate", "table"]
    for inst in label.meta["instances"]:
        assert label.meta["class_table"][inst["semantic_id"]] == inst["class"]
        assert (label.semantic[label.instance == inst["id"]] == inst["semantic_id"]).all()


def test_oneformer_from_a_saved_checkpoint(oneformer_dir, photos):
    one = labelers.get("oneformer", weights=str(oneformer_dir), threshold=0.0, overlap_threshold=0.0,
                       mask_threshold=0.0, semantic="model")
    assert one.classes == ["cup", "plate", "table"] and one.kind == "oneformer"
    images = [photos["coffee"][:90, :120], photos["chelsea"][:60, :100]]
    for rgb, result in zip(images, one.label(images)):
        assert result.instances and result.semantic.shape == rgb.shape[:2]
        cover = sum(inst.mask.astype(int) for inst in result.instances)
        assert cover.max() == 1 and all(inst.class_name in one.classes for inst in result.instances)
