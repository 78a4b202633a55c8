"""The elementwise activations' formulas (``codes.ELEMENTWISE``) and the code
generated from them (``fastnn/_kernels/formulas.py``).

That the generated Numba and Cython loops compute what the NumPy reference
computes is the conformance and gradient tests' job; these check the table,
the committed C header and the formula grammar.  No compiler is needed.
"""
import re
from pathlib import Path

import pytest

from fastnn._kernels import codes, formulas

CYTHON = Path(codes.__file__).parent / "cython"
NUMBA = Path(codes.__file__).parent / "numba"
NAMES = dict(enumerate(codes.ACTIVATIONS))


def test_the_c_header_is_generated_from_the_formulas():
    assert (CYTHON / "_elementwise.h").read_text() == formulas.c_rows(codes.ELEMENTWISE, NAMES, codes.SOFTMAX), \
        "_elementwise.h is stale: run python setup.py build_ext --inplace (it regenerates it)"


def test_every_activation_but_softmax_has_formulas():
    assert set(codes.ELEMENTWISE) == set(range(codes.N_ACTIVATIONS)) - {codes.SOFTMAX}
    for code, pair in codes.ELEMENTWISE.items():
        assert len(pair) == 2 and all(isinstance(f, str) for f in pair), NAMES[code]


def test_every_formula_function_has_a_helper_in_both_compiled_backends():
    header = (CYTHON / "_simd_math.h").read_text()
    numba_sources = "\n".join(p.read_text() for p in sorted(NUMBA.glob("*.py")))
    for name, (numba_name, c_name) in formulas.FUNCTIONS.items():
        for ctype, suffix in (("float", "f32"), ("double", "f64")):
            assert re.search(rf"^FASTNN_MATH {ctype} {c_name}_{suffix}\(", header, re.M), \
                f"{name}: no {c_name}_{suffix} in cython/_simd_math.h"
        if numba_name != "abs":  # Numba's builtin
            assert re.search(rf"^def {numba_name}\(", numba_sources, re.M), f"{name}: no {numba_name} in numba/"


def test_numba_source_defines_a_forward_and_a_derivative_per_code():
    scope = {}
    exec(formulas.numba_source(codes.ELEMENTWISE, NAMES), scope)  # only defines functions
    for code in codes.ELEMENTWISE:
        assert callable(scope[f"forward_{NAMES[code]}"]) and callable(scope[f"derivative_{NAMES[code]}"])


def test_constants_are_typed_and_selects_branch_free():
    text, used = formulas.expression("z if z > 0 else alpha * exp(-0.5 * z)", "numba")
    assert text == "_select((z > t(0.0)), z, (alpha * _exp(((-t(0.5)) * z))))"
    assert used == {"z", "alpha"}
    text, used = formulas.expression("1 if z > 0 else a + alpha", "float", derivative=True)
    assert text == "((zj > 0.0f) ? 1.0f : (aj + alpha))"
    assert used == {"z", "a", "alpha"}
    text, _ = formulas.expression("tanh(z) * 0.5", "double")
    assert text == "(fastnn_tanh_f64(zj) * 0.5)"


@pytest.mark.parametrize("formula, what", [
    ("z ** 2", "z ** 2"),                  # no power operator
    ("log(z)", "the call 'log(z)'"),       # not in FUNCTIONS
    ("exp(z, 2)", "the call 'exp(z, 2)'"),
    ("y * z", "the name 'y'"),
    ("a * z", "the name 'a'"),             # a forward pass has no output yet
    ("0 < z < 1", "0 < z < 1"),            # one comparison at most
    ("'z'", "'z'"),
])
def test_a_formula_outside_the_grammar_is_refused_by_name(formula, what):
    with pytest.raises(ValueError, match=re.escape(what)) as info:
        formulas.expression(formula, "float")
    assert repr(formula) in str(info.value)


def test_a_formula_that_does_not_parse_is_refused_by_name():
    with pytest.raises(ValueError, match=re.escape("'z +'")):
        formulas.numba_source({0: ("z +", "1")}, {0: "BROKEN"})
