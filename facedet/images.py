"""Reading user images safely, and drawing detections.

Decoding goes through Pillow, which reports truncated files and lets us check the pixel count
from the header before decoding (decompression bombs); resizing, drawing and writing use OpenCV.
Every image comes back as RGB uint8 HxWx3, upright (EXIF orientation applied): grayscale and
palette images are expanded, transparency is composited over white, 16-bit samples are scaled
down to 8 bits.
"""

import io
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np

from facedet.atomic import write_bytes
from facedet.errors import ImageError

MAX_PIXELS = 64_000_000  # ~8000 x 8000: larger images are refused before decoding
MAX_FILE_BYTES = 256 * 1024 * 1024


def read_image(source, name=None):
    """RGB uint8 array from a path, raw bytes or a binary file object; ImageError if unusable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    data, label = _read_bytes(source, name)
    if not data:
        raise ImageError(f"{label} is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label} is too large (more than {MAX_FILE_BYTES // (1 << 20)} MiB)")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings (its decompression-bomb warning: the pixel limit below is ours;
            # damaged EXIF) would be extra lines: the image decodes, or is refused in one line.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{label} is too large ({width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels)")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb8(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image (or not a format this tool reads)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{label} is too large (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageError(f"{label} cannot be decoded, it may be truncated or corrupt ({reason})") from None


def _read_bytes(source, name):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "the image"
    if hasattr(source, "read"):
        label = name or getattr(source, "name", None) or "the upload"
        return source.read(MAX_FILE_BYTES + 1), label
    path = Path(source)
    label = name or str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"no such file: {label}") from None
    except OSError as err:
        raise ImageError(f"cannot read {label}: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{label} is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        # A device (/dev/zero never ends) or a FIFO (opening it waits for a writer forever).
        raise ImageError(f"{label} is not a regular file (a device, FIFO or socket), not an image")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{label} is too large ({info.st_size // (1 << 20)} MiB)")
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1), label  # the cap holds even if the file grows meanwhile
    except OSError as err:
        raise ImageError(f"cannot read {label}: {err.strerror}") from None


def _to_rgb8(img):
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) grayscale: keep the high byte, as viewers do.
        arr = np.asarray(img, dtype=np.uint32)
        shift = 8 if arr.max(initial=0) <= 0xFFFF else 24
        gray = (arr >> shift).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        gray = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def resize(image, scale):
    """Bilinear resize by ``scale`` (as the reference implementation: OpenCV, fx = fy = scale)."""
    if scale == 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


def write_image(path, image):
    """Write an RGB image (format from the extension); ImageError if it cannot be written."""
    path = Path(path)
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else ".png",
                           cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError(f"cannot encode an image for {path}")
    return write_bytes(path, buf.tobytes(), error=ImageError)  # never half an image under its name
