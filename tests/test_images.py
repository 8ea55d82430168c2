"""Reading real photos in every awkward form, and refusing what is not an image."""

import io
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

from facedet.errors import ImageError
from facedet.images import read_image


@pytest.fixture(scope="module")
def hopper(assets_dir):
    return read_image(assets_dir / "grace_hopper.jpg")


def _png_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_colour_photos_come_back_as_rgb_uint8(assets_dir, hopper):
    assert hopper.shape == (600, 512, 3) and hopper.dtype == np.uint8
    with Image.open(assets_dir / "grace_hopper.jpg") as img:
        np.testing.assert_array_equal(hopper, np.asarray(img.convert("RGB")))
    astronaut = read_image(assets_dir / "astronaut.png")
    assert astronaut.shape == (512, 512, 3)


def test_grayscale_palette_and_16_bit_images_are_expanded(hopper):
    gray = Image.fromarray(hopper).convert("L")
    out = read_image(_png_bytes(gray))
    assert out.shape == hopper.shape[:2] + (3,)
    np.testing.assert_array_equal(out[:, :, 0], np.asarray(gray))
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])

    palette = Image.fromarray(hopper).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = read_image(_png_bytes(palette))
    np.testing.assert_array_equal(out, np.asarray(palette.convert("RGB")))

    sixteen = (np.asarray(gray, dtype=np.uint16) * 257).astype(np.uint16)
    out = read_image(_png_bytes(Image.fromarray(sixteen)))
    np.testing.assert_array_equal(out[:, :, 1], np.asarray(gray))


def test_transparency_is_composited_over_white(hopper):
    rgba = np.dstack([hopper, np.full(hopper.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0  # a transparent band at the top
    out = read_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    assert (out[:100] == 255).all()
    np.testing.assert_array_equal(out[100:], hopper[100:])


def test_exif_orientation_is_applied(hopper):
    # Store the photo rotated on its side with an EXIF tag saying how to turn it upright.
    sideways = Image.fromarray(hopper).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to view
    buf = io.BytesIO()
    sideways.save(buf, format="JPEG", quality=95, exif=exif)
    out = read_image(buf.getvalue())
    assert out.shape == hopper.shape
    assert np.abs(out.astype(int) - hopper.astype(int)).mean() < 4  # JPEG re-encoding noise only


def test_bad_inputs_are_refused_with_one_line(tmp_path, assets_dir):
    jpeg = (assets_dir / "grace_hopper.jpg").read_bytes()
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    cases = {
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "directory",
        tmp_path / "empty.jpg": "empty",
        tmp_path / "text.jpg": "not an image",
        tmp_path / "truncated.jpg": "truncated",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError, match=message) as err:
            read_image(path)
        assert "\n" not in str(err.value)


def _bomb_png(width, height):
    """A tiny PNG that declares a huge 1-bit image (its data is one compressed run of zeros)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    data = zlib.compress(row * 16, 9)  # deliberately short: the header alone must trigger the refusal
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_decompression_bombs_are_refused_before_decoding():
    with pytest.raises(ImageError, match="too large"):
        read_image(_bomb_png(30000, 30000))


def test_the_size_limit_holds_for_bytes_and_uploads_too(assets_dir, monkeypatch):
    import io

    from facedet import images

    data = (assets_dir / "grace_hopper.jpg").read_bytes()
    monkeypatch.setattr(images, "MAX_FILE_BYTES", len(data) - 1)
    for source in (data, io.BytesIO(data), assets_dir / "grace_hopper.jpg"):
        with pytest.raises(ImageError, match="too large"):
            read_image(source)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", len(data))
    assert read_image(io.BytesIO(data)).shape == (600, 512, 3)
