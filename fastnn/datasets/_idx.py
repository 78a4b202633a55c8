"""Reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the values in C order, big-endian.
Files may be gzip-compressed; the gzip signature is recognised from the first
two bytes, whatever the file is called.
"""
import gzip
import math
import os
import zlib

import numpy as np

_GZIP_SIGNATURE = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype (from the format's specification).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand one compressed byte into more
_CHUNK = 2 ** 20


def _parse_header(head, name, ndim=None, available=None, gzip_size=None):
    """``(dtype, shape, header_len, payload_len)`` from the first bytes of an IDX file.

    ``head`` holds at least the first 4 bytes and, where the file has them, the
    dimensions; ``available`` is how many bytes the whole file has (None:
    ``len(head)``, all of it), or can expand to from ``gzip_size`` bytes."""
    available = len(head) if available is None else available
    if len(head) < 4:
        raise ValueError(f"{name!r} is not an IDX file: only {len(head)} bytes")
    zero, type_code, n_dims = head[0:2], head[2], head[3]
    if zero != b"\x00\x00" or type_code not in IDX_DTYPES:
        raise ValueError(
            f"{name!r} is not an IDX file: bad magic number 0x{head[:4].hex()} "
            f"(expected 0x0000TTNN with type TT in "
            f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)})"
        )
    if n_dims == 0:
        raise ValueError(f"{name!r}: IDX header declares 0 dimensions")
    if ndim is not None and n_dims != ndim:
        raise ValueError(f"{name!r}: expected an IDX file with {ndim} dimensions, got {n_dims}")
    header_len = 4 + 4 * n_dims
    if len(head) < header_len:
        raise ValueError(f"{name!r} is truncated: header needs {header_len} bytes, file has {len(head)}")
    shape = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=n_dims, offset=4))
    dtype = IDX_DTYPES[type_code]
    payload = math.prod(shape) * dtype.itemsize  # Python ints: no overflow here
    if payload > np.iinfo(np.intp).max - header_len:
        raise ValueError(f"{name!r}: dimensions {shape} of {dtype.name} overflow: {payload} bytes is more "
                         f"than an array can hold ({np.iinfo(np.intp).max})")
    if available < header_len + payload:
        has = f"has {available}" if gzip_size is None else \
            f"of {gzip_size} gzip-compressed bytes can expand to at most {available}"
        raise ValueError(f"{name!r} is truncated: dimensions {shape} of {dtype.name} need "
                         f"{header_len + payload} bytes, file {has}")
    return dtype, shape, header_len, payload


def _to_array(payload, dtype, shape):
    """Native-order, writable array over ``payload`` (a bytearray: no copy)."""
    data = np.frombuffer(payload, dtype=dtype)
    if not dtype.isnative:
        data = data.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return data.reshape(shape)


def parse_idx(buf, *, ndim=None, name="<bytes>"):
    """Parse the bytes of an uncompressed IDX file.

    Parameters
    ----------
    buf : bytes
        Content of an IDX file (not gzip-compressed).
    ndim : int, optional
        Expected number of dimensions; a file with another count is rejected.
    name : str
        What to call the data in error messages (usually the file name).

    Returns
    -------
    ndarray of shape given by the header
        Values in native byte order, a fresh writable array.

    Raises
    ------
    ValueError
        Bad magic number, unknown type code, unexpected dimension count,
        dimensions whose size overflows, or a data length that does not match
        the dimensions exactly.
    """
    dtype, shape, header_len, payload = _parse_header(buf, name, ndim)
    if len(buf) != header_len + payload:
        _wrong_length(name, shape, dtype, header_len + payload, len(buf))
    return _to_array(bytearray(buf[header_len:]), dtype, shape)


def _wrong_length(name, shape, dtype, expected, has):
    """``has``: the file's length, or None for 'more' (a stream read only one byte past)."""
    kind = "truncated" if has is not None and has < expected else "longer than its header says"
    raise ValueError(f"{name!r} is {kind}: dimensions {shape} of {dtype.name} need {expected} bytes, "
                     f"file has {'more' if has is None else has}")


def _read_stream(f, name, ndim, size, gzipped):
    """Header first, then exactly the payload it declares (and one byte more, to reject a
    longer file): memory stays at the declared size whatever the file expands to.
    ``size``: the file's length on disk."""
    head = f.read(4)
    if len(head) == 4:
        head += f.read(4 * head[3])
    available = size * _MAX_DEFLATE_RATIO if gzipped else size
    dtype, shape, header_len, payload = _parse_header(head, name, ndim, available, size if gzipped else None)
    if not gzipped and size != header_len + payload:
        _wrong_length(name, shape, dtype, header_len + payload, size)
    buf = bytearray(payload)
    view, got = memoryview(buf), 0
    while got < payload:
        n = f.readinto(view[got:got + _CHUNK])
        if not n:
            _wrong_length(name, shape, dtype, header_len + payload, header_len + got)
        got += n
    view.release()
    if f.read(1):
        _wrong_length(name, shape, dtype, header_len + payload, None)
    return _to_array(buf, dtype, shape)


def read_idx(path, *, ndim=None):
    """Read an IDX file, gzip-compressed or raw.

    Parameters
    ----------
    path : str or os.PathLike
        File to read. Compression is detected from the content, not the name.
    ndim : int, optional
        Expected number of dimensions (3 for image files, 1 for label files).

    Returns
    -------
    ndarray
        Array of the shape stored in the header; dtype from the IDX type code
        (uint8 for MNIST images and labels), native byte order, writable.

    Raises
    ------
    ValueError
        The file is corrupt, truncated, not IDX, has the wrong number of
        dimensions, or is longer than its header says (a gzip file is
        decompressed only up to the declared size plus one byte). The message
        names the file. Nothing is returned partially.
    """
    name = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as raw:
        if raw.read(2) != _GZIP_SIGNATURE:
            raw.seek(0)
            return _read_stream(raw, name, ndim, size, gzipped=False)
        raw.seek(0)
        try:
            # gzip checks the CRC-32 and the length stored at the end of the
            # stream (read when the final byte is asked for), so a truncated or
            # altered archive fails here.
            with gzip.GzipFile(fileobj=raw) as f:
                return _read_stream(f, name, ndim, size, gzipped=True)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{name!r} is a corrupt or truncated gzip file: {exc}") from exc
