"""The Cython backend's C enums (``cython/_codes.pxd``) against ``fastnn._kernels.codes``.

The codes are defined once, in Python; ``setup.py`` generates the ``.pxd``
from them for the compiled kernels' branches (``codes.cython_declarations``).
These tests check that the committed file is that output and parse it to
compare the values.  No compiler or build is needed.
"""
import re
from pathlib import Path

from fastnn._kernels import codes

PXD = Path(codes.__file__).parent / "cython" / "_codes.pxd"
COUNTS = {"activation": "N_ACTIVATIONS", "loss": "N_LOSSES", "optimizer": "N_OPTIMIZERS"}


def enums():
    """The ``cdef enum:`` blocks of the .pxd in file order, each a list of (name, value)."""
    blocks, current = [], None
    for line in PXD.read_text().splitlines():
        if line.startswith("cdef enum"):
            current = []
            blocks.append(current)
        elif current is not None and (match := re.fullmatch(r"\s+(\w+)\s*=\s*(\d+)\s*(#.*)?", line)):
            current.append((match.group(1), int(match.group(2))))
        elif line and not line[0].isspace():
            current = None  # the block ended
    return blocks


def test_the_pxd_is_generated_from_codes_py():
    assert PXD.read_text() == codes.cython_declarations(), \
        f"{PXD.name} is stale: run python setup.py build_ext --inplace (it regenerates it)"


def test_every_group_is_one_enum_in_code_order_with_its_count():
    blocks = enums()
    assert len(blocks) == len(codes.GROUPS), f"{PXD.name}: one enum per group of codes.GROUPS"
    for (group, names), block in zip(codes.GROUPS.items(), blocks):
        expected = [(name, getattr(codes, name)) for name in names] + [(COUNTS[group], len(names))]
        assert block == expected, f"{PXD.name}: the {group} enum differs from fastnn._kernels.codes"
        assert getattr(codes, COUNTS[group]) == len(names)


def test_codes_are_declared_nowhere_else_in_the_cython_sources():
    names = {name for group in codes.GROUPS.values() for name in group} | set(COUNTS.values())
    for path in sorted(PXD.parent.glob("*.p[yx][xd]")):
        if path == PXD:
            continue
        declared = set(re.findall(r"^\s+(\w+)\s*=\s*\d+", path.read_text(), re.M)) & names
        assert not declared, f"{path.name} declares {sorted(declared)}: cimport them from _codes"
