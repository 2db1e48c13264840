import numpy as np
import pytest
from PIL import Image

from quilt_llava.errors import InputError
from quilt_llava.images import (
    ImageLimits,
    draw_region_ellipse,
    open_image,
    pad_to_square,
    processor_fill,
)


def test_pad_to_square_fills_with_the_given_colour_and_keeps_content():
    img = Image.new("RGB", (40, 20), (200, 100, 50))
    out = pad_to_square(img, (1, 2, 3))
    assert out.size == (40, 40)
    assert out.getpixel((0, 0)) == (1, 2, 3) and out.getpixel((39, 39)) == (1, 2, 3)
    assert out.getpixel((20, 20)) == (200, 100, 50)
    tall = pad_to_square(Image.new("RGB", (10, 31), (9, 9, 9)), (0, 0, 0))
    assert tall.size == (31, 31) and tall.getpixel((10, 0)) == (9, 9, 9) and tall.getpixel((9, 0)) == (0, 0, 0)


def test_processor_fill_is_the_releases_int_of_mean_times_255():
    # CLIP's image_mean, written out here: int() truncates (0.48145466 * 255 = 122.77 -> 122)
    assert processor_fill([0.48145466, 0.4578275, 0.40821073]) == (122, 116, 104)
    assert processor_fill([0.5, 0.5, 0.5]) == (127, 127, 127)  # SigLIP
    with pytest.raises(ValueError, match="3 channels"):
        processor_fill([0.5])


def test_open_image_rejects_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_image(tmp_path / "none.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"junk\.png"):
        open_image(junk)
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(big)
    with pytest.raises(InputError, match="pixels"):
        open_image(big, ImageLimits(max_pixels=10_000))
    with pytest.raises(InputError, match="MiB"):
        open_image(big, ImageLimits(max_bytes=10))
    assert open_image(big).size == (300, 300)


def test_ellipse_is_drawn_inside_box_only():
    img = Image.new("RGB", (100, 100), (255, 255, 255))
    out = np.asarray(draw_region_ellipse(img, [0.2, 0.2, 0.6, 0.6]))
    red = (out[..., 0] == 255) & (out[..., 1] == 0)
    ys, xs = np.nonzero(red)
    assert red.sum() > 50
    assert xs.min() >= 19 and xs.max() <= 60 and ys.min() >= 19 and ys.max() <= 60
    assert np.asarray(img).min() == 255  # input untouched
