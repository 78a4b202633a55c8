"""Reading ``.npz`` entries without pickle and without trusting declared sizes.

``Archive.read`` checks an entry's ``.npy`` header against the shape and
dtype the caller expects *before* reading its data, and entries must be
stored uncompressed (as ``numpy.savez`` writes them), so no entry can make the
reader allocate more than the caller expects or the file holds.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from ._file_schema import BadFile

_MAX_HEADER = 10_000  # bytes of .npy header (numpy's own default limit)
_PLAIN_KINDS = "biufU"  # the dtype kinds ``read(dtype=None)`` accepts


class Archive:
    """The ``.npy`` entries of the zip archive at ``path``, by name without ``.npy``."""

    def __init__(self, path):
        self.size = os.path.getsize(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise BadFile(f"not a zip archive ({exc})", kind="not a fastnn model file") from None
        self.entries = {}
        for info in self._zip.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in self.entries:
                raise BadFile(f"duplicate entry {key!r}")
            self.entries[key] = info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

    def read(self, key, dtype, shape=None, max_length=None):
        """Entry ``key`` as a native array of ``dtype`` and ``shape`` (or 1-D of at most
        ``max_length`` items when ``shape`` is None); ``BadFile`` otherwise.  ``dtype=None``
        accepts the stored dtype if it is bool, a number or a string (``_PLAIN_KINDS``)."""
        info = self.entries[key]
        if not info.filename.endswith(".npy"):
            raise BadFile(f"{key}: expected a .npy array entry, got {info.filename!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BadFile(f"{key}: expected an entry stored uncompressed (as fastnn writes them), "
                          f"got zip compression method {info.compress_type}")
        if max(info.file_size, info.compress_size) > self.size:
            raise BadFile(f"{key}: declares {info.file_size} bytes, more than the file's {self.size}")
        with self._zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise BadFile(f"{key}: expected a .npy entry of format 1.0 or 2.0, got {version}")
            reader = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            got_shape, fortran, got = reader(f, max_header_size=_MAX_HEADER)
            dtype = np.dtype(dtype) if dtype is not None else \
                got.newbyteorder("=") if got.kind in _PLAIN_KINDS and not got.hasobject else None
            expected_shape = shape if shape is not None else got_shape[:1] or (0,)  # 1-D, not 0-d
            if (got_shape != expected_shape or dtype is None or got.hasobject or got.newbyteorder("=") != dtype
                    or (max_length is not None and got_shape[0] > max_length)):
                kind = dtype if dtype is not None else "bool, number or string"
                expected = f"shape {shape} {kind}" if shape is not None else \
                    f"a 1-D {kind} array of at most {max_length:,} items"
                raise BadFile(f"{key}: expected {expected}, got shape {got_shape} {got}")
            nbytes = int(np.prod(got_shape, dtype=object)) * got.itemsize
            if nbytes > info.file_size:
                raise BadFile(f"{key}: shape {got_shape} needs {nbytes} bytes, the entry has {info.file_size}")
            data = f.read(nbytes)
            if len(data) != nbytes or f.read(1):
                raise BadFile(f"{key}: expected {nbytes} bytes of data for shape {got_shape}, got "
                              f"{'fewer' if len(data) != nbytes else 'more'}")
        arr = np.frombuffer(data, got).reshape(got_shape, order="F" if fortran else "C")
        return np.array(arr, dtype=dtype, order="C")  # a writable copy; keeps a 0-d shape ()
