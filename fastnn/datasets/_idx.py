"""Reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the values in C order, big-endian.
Files may be gzip-compressed; the gzip signature is recognised from the first
two bytes, whatever the file is called.
"""
import gzip
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


def _read_bytes(path):
    """Whole (decompressed) content of ``path``; gzip errors become ValueError."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_SIGNATURE):
        return raw
    try:
        # gzip checks the CRC-32 and the length stored at the end of the
        # stream, so a truncated or altered archive fails here.
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{os.fspath(path)!r} is a corrupt or truncated gzip file: {exc}") from exc


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
        Bad magic number, unknown type code, unexpected dimension count, or a
        data length that does not match the dimensions exactly.
    """
    if len(buf) < 4:
        raise ValueError(f"{name!r} is not an IDX file: only {len(buf)} bytes")
    zero, type_code, n_dims = buf[0:2], buf[2], buf[3]
    if zero != b"\x00\x00" or type_code not in IDX_DTYPES:
        raise ValueError(
            f"{name!r} is not an IDX file: bad magic number 0x{buf[:4].hex()} "
            f"(expected 0x0000TTNN with type TT in "
            f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)})"
        )
    if n_dims == 0:
        raise ValueError(f"{name!r}: IDX header declares 0 dimensions")
    if ndim is not None and n_dims != ndim:
        raise ValueError(f"{name!r}: expected an IDX file with {ndim} dimensions, got {n_dims}")
    header_len = 4 + 4 * n_dims
    if len(buf) < header_len:
        raise ValueError(f"{name!r} is truncated: header needs {header_len} bytes, file has {len(buf)}")
    shape = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=n_dims, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        kind = "truncated" if len(buf) < expected else "longer than its header says"
        raise ValueError(
            f"{name!r} is {kind}: dimensions {shape} of {dtype.name} need {expected} bytes, "
            f"file has {len(buf)}"
        )
    data = np.frombuffer(buf, dtype=dtype, offset=header_len)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


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
        The file is corrupt, truncated, not IDX, or has the wrong number of
        dimensions. The message names the file. Nothing is returned partially.
    """
    return parse_idx(_read_bytes(path), ndim=ndim, name=os.fspath(path))
