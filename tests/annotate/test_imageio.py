"""Safe decoding: every mode becomes upright RGB; every bad input is a SkipImage with its reason."""

import io

import numpy as np
import pytest
from PIL import Image

from annotate.imageio import DecodePolicy, SkipImage, decode_image

from .conftest import encode

POLICY = DecodePolicy(resize="none")


def _gradient(h=48, w=64) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) % 256], -1).astype(np.uint8)


def _reason(data: bytes, policy: DecodePolicy = POLICY) -> str:
    with pytest.raises(SkipImage) as info:
        decode_image(data, policy)
    return info.value.reason


def test_plain_jpeg_keeps_its_own_bytes():
    data = encode(_gradient(), "JPEG", quality=90)
    img = decode_image(data, POLICY)
    assert img.stored == ("rgb.jpg", data)  # no re-encoding loss when nothing changed
    assert img.rgb.shape == (48, 64, 3) and img.rgb.dtype == np.uint8 and img.format == "JPEG"


def test_exif_orientation_is_applied_and_jpeg_reencoded():
    rgb = _gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    data = encode(rgb, "JPEG", quality=95, exif=exif.tobytes())
    img = decode_image(data, POLICY)
    assert img.rgb.shape == (64, 48, 3) and img.exif_transposed
    expected = np.rot90(rgb, k=-1)
    assert np.abs(img.rgb.astype(int) - expected).mean() < 3  # JPEG noise only
    name, stored = img.stored
    assert name == "rgb.jpg" and stored != data
    with Image.open(io.BytesIO(stored)) as back:
        assert back.size == (48, 64) and back.getexif().get(0x0112, 1) == 1  # upright, no tag to re-apply


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "RGB", "F"])
def test_modes_become_rgb(mode):
    rgb = _gradient()
    src = Image.fromarray(rgb).convert(mode)
    fmt = {"CMYK": "JPEG", "F": "TIFF"}.get(mode, "PNG")
    img = decode_image(encode(src, fmt), POLICY)
    assert img.rgb.shape == (48, 64, 3) and img.rgb.dtype == np.uint8 and img.mode == src.mode
    assert np.abs(img.rgb.astype(int) - np.asarray(src.convert("RGB"), int)).mean() < 4


def test_sixteen_bit_grey_is_rescaled_not_clipped():
    values = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint16) * 257  # 8-bit value v stored as v * 257
    img = decode_image(encode(Image.fromarray(values), "PNG"), POLICY)
    assert img.mode.startswith("I")
    np.testing.assert_array_equal(img.rgb[..., 0], values // 257)  # exact: 16-bit -> 8-bit by /257
    np.testing.assert_array_equal(img.rgb[..., 0], img.rgb[..., 2])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_the_background(mode):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (200, 30, 30)
    rgba[:20, :, 3] = 255  # top half opaque red, bottom half fully transparent
    src = Image.fromarray(rgba, "RGBA")
    src = src.convert(mode)
    img = decode_image(encode(src, "PNG"), DecodePolicy(resize="none", alpha_background=(0, 0, 255)))
    assert (img.rgb[30:, :] == (0, 0, 255)).all()  # transparent -> background, not the hidden color
    assert (img.rgb[:10] != (0, 0, 255)).any(axis=-1).all()


def test_palette_transparency_is_composited():
    src = Image.fromarray(_gradient()).convert("P")
    src.info["transparency"] = int(np.asarray(src)[0, 0])
    img = decode_image(encode(src, "PNG", transparency=src.info["transparency"]), POLICY)
    assert tuple(img.rgb[0, 0]) == (255, 255, 255)


def test_animation_keeps_the_first_frame():
    first, second = _gradient(), _gradient()[::-1].copy()
    data = encode(Image.fromarray(first).convert("P"), "GIF", save_all=True,
                  append_images=[Image.fromarray(second).convert("P")])
    img = decode_image(data, POLICY)
    assert img.n_frames == 2
    expected = np.asarray(Image.fromarray(first).convert("P").convert("RGB"), int)
    assert np.abs(img.rgb.astype(int) - expected).mean() < 1


def test_webp_and_tiff_decode():
    for fmt in ("WEBP", "TIFF", "BMP"):
        assert decode_image(encode(_gradient(), fmt), POLICY).format == fmt


def test_resize_policy_downscales_never_upscales():
    data = encode(_gradient(200, 400), "PNG")
    assert decode_image(data, DecodePolicy(resize="max_side", size=100)).rgb.shape == (50, 100, 3)
    assert decode_image(data, DecodePolicy(resize="min_side", size=100)).rgb.shape == (100, 200, 3)
    assert decode_image(data, DecodePolicy(resize="max_side", size=1000)).rgb.shape == (200, 400, 3)
    jpg = decode_image(encode(_gradient(200, 400), "JPEG"), DecodePolicy(resize="max_side", size=100))
    assert jpg.resized and jpg.stored[0] == "rgb.png"  # resized pixels are stored losslessly


def test_bad_inputs_are_skipped_with_their_reason():
    jpg = encode(_gradient(), "JPEG")
    png = encode(_gradient(), "PNG")
    assert _reason(b"") == "empty"
    assert _reason(b"<html><body>404 not found</body></html>") == "not_an_image"
    assert _reason(jpg[: len(jpg) // 2]) == "truncated"
    assert _reason(png[: len(png) - 40]) == "truncated"
    assert _reason(png[:40]) == "truncated"  # cut inside the header
    garbled = bytearray(png)
    garbled[60:120] = bytes(60)  # zeroed compressed data, intact end marker: CRC / zlib errors
    assert _reason(bytes(garbled)) == "corrupt"
    garbled_jpg = jpg[:20] + bytes(200) + jpg[220:]  # complete file, destroyed header segments
    assert _reason(garbled_jpg) == "corrupt"
    assert _reason(encode(_gradient(20, 64), "PNG"), DecodePolicy(min_side=32)) == "too_small"
    assert _reason(encode(_gradient(40, 300), "PNG"), DecodePolicy(max_aspect=4.0)) == "aspect_ratio"
    assert _reason(encode(_gradient(40, 300), "PNG"), DecodePolicy(max_side=200, max_aspect=0)) == "too_large"
    assert _reason(png, DecodePolicy(max_pixels=1000)) == "decompression_bomb"  # from the header, before decoding


def test_pillow_bomb_limit_is_a_skip_too():
    # 100 MP of zeros compresses to ~100 kB: a classic bomb past Pillow's MAX_IMAGE_PIXELS.
    big = encode(Image.new("L", (10000, 10000)), "PNG")
    assert _reason(big, DecodePolicy(max_pixels=10**12)) == "decompression_bomb"


def test_policy_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="resize must be one of .*'crop'"):
        DecodePolicy(resize="crop")
    with pytest.raises(ValueError, match="max_aspect"):
        DecodePolicy(max_aspect=0.5)
