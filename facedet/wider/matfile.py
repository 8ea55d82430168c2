"""A small reader for MATLAB 5 ``.mat`` files holding cell arrays of numbers and text.

The WIDER FACE eval-tools ground truth is stored this way. ``scipy.io.loadmat`` reads it too,
but importing ``scipy.io`` alone takes longer than the whole evaluation may (it pulls in
``scipy.sparse``), so the evaluation path uses this reader and falls back to SciPy only for
content it does not handle (structs, sparse or complex arrays, big-endian files).

Values come back as: a cell as a numpy object array of its shape, a char array as ``str``, a
numeric or logical array as a numpy array of its shape (column-major order, as MATLAB stores it).
"""

import math
import struct
import warnings
import zlib

import numpy as np

from facedet.errors import DataError

# MAT-file data types (numeric element types) and array classes, from the MAT-file format spec.
_MI_DTYPES = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8", 12: "<i8", 13: "<u8"}
_MI_MATRIX, _MI_COMPRESSED, _MI_UTF8, _MI_UTF16 = 14, 15, 16, 17
_CELL, _CHAR = 1, 4
_NUMERIC_CLASSES = {6: "<f8", 7: "<f4", 8: "<i1", 9: "<u1", 10: "<i2", 11: "<u2", 12: "<i4", 13: "<u4", 14: "<i8", 15: "<u8"}
_COMPLEX_FLAG = 0x0800
_HEADER_BYTES = 128


class Unsupported(Exception):
    """Content outside what this reader handles; the caller falls back to SciPy."""


def read_mat(path, names):
    """Variables ``names`` of the MAT file at ``path`` as a dict; DataError if one is missing."""
    try:
        data = _read_native(path, names)
    except Unsupported:
        data = _read_with_scipy(path, names)
    missing = [name for name in names if name not in data]
    if missing:
        raise DataError(f"{path} has no variable {missing[0]!r}; is it a WIDER FACE ground-truth file?")
    return data


def _read_with_scipy(path, names):
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy's warnings about odd files: the error says it
            return scipy.io.loadmat(str(path), variable_names=list(names))
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"{path} cannot be read as a MAT file ({reason[:100]})") from None


def _read_native(path, names):
    try:
        raw = open(path, "rb").read()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror})") from None
    if not raw:
        raise DataError(f"{path} is empty; is it a WIDER FACE ground-truth file?")
    if len(raw) < _HEADER_BYTES or not raw.startswith(b"MATLAB 5.0 MAT-file"):
        raise Unsupported
    if raw[126:128] != b"IM":  # little-endian marker; anything else goes to SciPy
        raise Unsupported
    wanted, found = set(names), {}
    pos = _HEADER_BYTES
    while pos + 8 <= len(raw) and len(found) < len(wanted):
        dtype, nbytes = _TAG.unpack_from(raw, pos)
        body = raw[pos + 8 : pos + 8 + nbytes]
        pos += 8 + nbytes
        if dtype == _MI_COMPRESSED:
            try:
                # Peek at the variable's name before inflating all of it.
                if _matrix_name(zlib.decompressobj().decompress(body, 256)) not in wanted:
                    continue
                body = zlib.decompress(body)
                dtype, nbytes = _TAG.unpack_from(body, 0)
            except (zlib.error, struct.error) as err:
                raise DataError(f"{path} is corrupt ({err})") from None
            body = body[8 : 8 + nbytes]
        else:
            pos += -pos % 8
        if dtype != _MI_MATRIX:
            continue
        try:
            name, value = _matrix(body, 0, len(body))
        except (struct.error, ValueError, UnicodeDecodeError):
            raise Unsupported from None  # damaged or unusual: let SciPy have a go, or explain
        if name in wanted:
            found[name] = value
    return found


def _matrix_name(head):
    """Name of the miMATRIX element at the start of ``head`` (a decompressed prefix)."""
    try:
        if _TAG.unpack_from(head, 0)[0] != _MI_MATRIX:
            return None
        pos = _skip(head, _skip(head, 8))  # past the array flags and dimensions
        _, start, end, _ = _element(head, pos)
        return head[start:end].decode("ascii")
    except (struct.error, UnicodeDecodeError):
        return None


_TAG = struct.Struct("<II")


def _element(buf, pos):
    """(type, data start, data end, next position) of the tagged element at ``pos``."""
    first, second = _TAG.unpack_from(buf, pos)
    if first >> 16:  # "small data element": type and size share one word, data in the next
        return first & 0xFFFF, pos + 4, pos + 4 + (first >> 16), pos + 8
    start = pos + 8
    return first, start, start + second, start + second + (-second % 8)


def _skip(buf, pos):
    return _element(buf, pos)[3]


def _matrix(buf, pos, end):
    """(name, value) of the miMATRIX whose body (the bytes after its tag) spans ``buf[pos:end]``."""
    if pos == end:  # an empty cell element
        return "", np.zeros((0, 0))
    _, start, _, pos = _element(buf, pos)
    flags = _TAG.unpack_from(buf, start)[0]
    array_class = flags & 0xFF
    _, start, stop, pos = _element(buf, pos)
    shape = struct.unpack_from(f"<{(stop - start) // 4}i", buf, start)
    _, start, stop, pos = _element(buf, pos)
    name = buf[start:stop].decode("ascii", "replace")
    count = math.prod(shape)
    if array_class == _CELL:
        cell = np.empty(count, dtype=object)
        for i in range(count):
            dtype, start, stop, pos = _element(buf, pos)
            if dtype != _MI_MATRIX:
                raise Unsupported
            cell[i] = _matrix(buf, start, stop)[1]
        return name, cell.reshape(shape, order="F")
    if flags & _COMPLEX_FLAG:
        raise Unsupported
    dtype, start, stop, pos = _element(buf, pos)
    if array_class == _CHAR:
        return name, _decode_text(dtype, buf[start:stop], shape)
    if array_class not in _NUMERIC_CLASSES or dtype not in _MI_DTYPES:
        raise Unsupported
    # MATLAB may store e.g. a double array as uint8 to save space: cast to the class type.
    values = np.frombuffer(buf, _MI_DTYPES[dtype], (stop - start) // _ITEM_BYTES[dtype], start)
    if values.size != count:
        raise Unsupported
    return name, values.astype(_NUMERIC_CLASSES[array_class]).reshape(shape, order="F")


_ITEM_BYTES = {key: np.dtype(value).itemsize for key, value in _MI_DTYPES.items()}


def _decode_text(dtype, data, shape):
    if dtype in (2, _MI_UTF8):
        text = data.decode("utf-8" if dtype == _MI_UTF8 else "latin-1")
    elif dtype in (4, _MI_UTF16):
        text = data.decode("utf-16-le")
    else:
        raise Unsupported
    if len(shape) != 2 or len(text) != shape[0] * shape[1]:
        raise Unsupported
    if shape[0] <= 1:
        return text
    # Several rows, stored column by column: row r is every shape[0]-th character from r.
    return "\n".join(text[row :: shape[0]] for row in range(shape[0]))
