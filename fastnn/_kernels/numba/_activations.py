"""Activations and their derivatives (Numba).

Each elementwise activation is two scalar functions in ``ELEMENTWISE``
(forward and derivative), compiled from its formulas in ``codes.ELEMENTWISE``
(``formulas.numba_source``) and inlined into the loops over a layer's outputs,
which run on flat 1-D views.  The loops (``_act_flat``, ``_dact_flat``,
``_dact_flat_out``) are chosen by code when they compile: a constant code
compiles one activation's loop, a run-time code a branch per activation.  Elementwise kernels whose
output may alias an input (``dZ_out is dA``) have an in-place loop: LLVM's
runtime overlap check fails for an exact alias and would fall back to scalar
code.
"""
from numba import types
from numba.extending import overload

from .. import formulas
from ..codes import ACTIVATIONS, LINEAR, SOFTMAX
from ..codes import ELEMENTWISE as FORMULAS
from ._jit import _OVERLOAD_OPTIONS, _select, jit, jit_inline, jit_internal
from ._math import _dot, _exp, _expm1, _log1p_unit, _norm_cdf, _sum, _tanh


@jit_inline
def _sigmoid(z):
    one = type(z)(1.0)
    return one / (one + _exp(-z))


@jit
def _softmax_rows(Z, A):
    """A := softmax(Z) row-wise, stable (max subtracted).     # OUT: A"""
    n, m = Z.shape
    one = Z.dtype.type(1.0)
    for i in range(n):
        zmax = Z[i, 0]
        for j in range(1, m):
            v = Z[i, j]
            zmax = v if v > zmax else zmax
        for j in range(m):
            A[i, j] = _exp(Z[i, j] - zmax)
        inv = one / _sum(A[i])
        for j in range(m):
            A[i, j] *= inv


def _compile_formulas():
    """code -> (forward(z, alpha), derivative(z, a, alpha)), inline Numba functions
    written from ``codes.ELEMENTWISE`` with this backend's helpers."""
    names = dict(enumerate(ACTIVATIONS))
    scope = {"_select": _select, "_exp": _exp, "_expm1": _expm1, "_tanh": _tanh,
             "_log1p_unit": _log1p_unit, "_norm_cdf": _norm_cdf, "_sigmoid": _sigmoid}
    # The source is built from the formulas in codes.py, checked by formulas.py.
    exec(compile(formulas.numba_source(FORMULAS, names), __file__, "exec"), scope)  # noqa: S102
    return {code: (jit_inline(scope[f"forward_{names[code]}"]), jit_inline(scope[f"derivative_{names[code]}"]))
            for code in FORMULAS}


# code -> (forward, derivative); softmax is row-wise (``_softmax_rows``).
ELEMENTWISE = _compile_formulas()


# The loops over a layer's outputs.  A code that is a compile-time constant (an
# ``IntegerLiteral``: the training loop compiles one specialization per model)
# compiles that activation's loop alone; a run-time code compiles a chain that
# calls each activation's specialization (every one of them, once).
def _act_flat(act, alpha, z, a):
    """a := act(z) on 1-D views (not softmax).     # OUT: a"""
    raise NotImplementedError("compiled only")


def _dact_flat(act, alpha, z, a, d):
    """d *= act'(z) on 1-D views (not softmax); in place.     # INOUT: d"""
    raise NotImplementedError("compiled only")


def _dact_flat_out(act, alpha, z, a, src, d):
    """d := src * act'(z) on 1-D views (not softmax); d must not alias src.     # OUT: d"""
    raise NotImplementedError("compiled only")


def _code(act):
    """The activation's code if ``act`` is a compile-time constant, else None."""
    if isinstance(act, types.IntegerLiteral):
        return act.literal_value
    return None


# A constant code without an elementwise loop (softmax) reaches these kernels only in
# branches that their callers never take, but those branches still compile.
_NOT_ELEMENTWISE = "not an elementwise activation"


def _run_time_chain(params, loop, skip_linear=False):
    """``impl(act, <params>)`` for a run-time ``act``: one branch per code, each
    running ``loop`` (one statement over ``i``; ``F``/``D`` stand for that
    activation's forward/derivative).  Written out from ``ELEMENTWISE`` into one
    function, as a hand-written chain would be (one function compiles faster
    than a call per code), so a new activation needs no edit here."""
    lines = [f"def impl(act, {params}):"]
    scope = {}
    for code, (forward, derivative) in ELEMENTWISE.items():
        scope[f"F{code}"], scope[f"D{code}"] = forward, derivative
        lines.append(f"    if act == {code}:")
        if not (skip_linear and code == LINEAR):
            lines.append(f"        for i in range({params.split(', ')[-1]}.size):")
            lines.append("            " + loop.replace("F(", f"F{code}(").replace("D(", f"D{code}("))
        lines.append("        return")
    lines.append('    raise ValueError("unknown activation code")')
    exec("\n".join(lines), scope)  # noqa: S102 - source built above from integer codes
    return scope["impl"]


@overload(_act_flat, prefer_literal=True, **_OVERLOAD_OPTIONS)
def _ol_act_flat(act, alpha, z, a):
    code = _code(act)
    if code is None:
        return _run_time_chain("alpha, z, a", "a[i] = F(z[i], alpha)")
    if code not in ELEMENTWISE:
        def impl(act, alpha, z, a):
            raise ValueError(_NOT_ELEMENTWISE)
        return impl
    f = ELEMENTWISE[code][0]

    def impl(act, alpha, z, a):
        for i in range(z.size):
            a[i] = f(z[i], alpha)
    return impl


@overload(_dact_flat, prefer_literal=True, **_OVERLOAD_OPTIONS)
def _ol_dact_flat(act, alpha, z, a, d):
    code = _code(act)
    if code is None:
        return _run_time_chain("alpha, z, a, d", "d[i] *= D(z[i], a[i], alpha)", skip_linear=True)
    if code not in ELEMENTWISE:
        def impl(act, alpha, z, a, d):
            raise ValueError(_NOT_ELEMENTWISE)
        return impl
    if code == LINEAR:
        return lambda act, alpha, z, a, d: None
    df = ELEMENTWISE[code][1]

    def impl(act, alpha, z, a, d):
        for i in range(d.size):
            d[i] *= df(z[i], a[i], alpha)
    return impl


@overload(_dact_flat_out, prefer_literal=True, **_OVERLOAD_OPTIONS)
def _ol_dact_flat_out(act, alpha, z, a, src, d):
    code = _code(act)
    if code is None:
        return _run_time_chain("alpha, z, a, src, d", "d[i] = src[i] * D(z[i], a[i], alpha)")
    if code not in ELEMENTWISE:
        def impl(act, alpha, z, a, src, d):
            raise ValueError(_NOT_ELEMENTWISE)
        return impl
    df = ELEMENTWISE[code][1]

    def impl(act, alpha, z, a, src, d):
        for i in range(d.size):
            d[i] = src[i] * df(z[i], a[i], alpha)
    return impl


@jit_internal
def _softmax_backward_rows(A, dA, dZ):
    """dZ := A * (dA - rowsum(dA * A)); dZ may alias dA.     # OUT: dZ"""
    n, m = A.shape
    for i in range(n):
        dot = _dot(dA[i], A[i])
        for j in range(m):
            dZ[i, j] = A[i, j] * (dA[i, j] - dot)


@jit
def activation_backward(act, alpha, Z, A, dA, dZ_out):
    """dZ_out := dA * act'(Z) (softmax: A * (dA - rowsum(dA * A))); dZ_out may be dA.

    # IN: Z, A, dA  OUT: dZ_out
    """
    n, m = dZ_out.shape
    if (Z.shape[0] != n or Z.shape[1] != m or A.shape[0] != n or A.shape[1] != m
            or dA.shape[0] != n or dA.shape[1] != m):
        raise ValueError("activation_backward: Z, A, dA and dZ_out must have one shape")
    if dA.ctypes.data == dZ_out.ctypes.data:
        _derivative_in_place(act, alpha, Z, A, dZ_out)
    elif act == SOFTMAX:
        _softmax_backward_rows(A, dA, dZ_out)
    else:
        _dact_flat_out(act, dZ_out.dtype.type(alpha), Z.reshape(n * m), A.reshape(n * m), dA.reshape(n * m),
                       dZ_out.reshape(n * m))


@jit
def _derivative_in_place(act, alpha, Z, A, dZ):
    """dZ *= act'(Z) (softmax: A * (dZ - rowsum(dZ * A))), in place: ``activation_backward``
    with ``dA is dZ_out``, the training loop's case.  Z, A, dZ: (n, m), C-contiguous."""
    if act == SOFTMAX:
        _check_derivative_shapes(Z, A, dZ)
        _softmax_backward_rows(A, dZ, dZ)
        return
    derivative_elementwise(act, alpha, Z, A, dZ)


@jit_inline
def _check_derivative_shapes(Z, A, dZ):
    n, m = dZ.shape
    if Z.shape[0] != n or Z.shape[1] != m or A.shape[0] != n or A.shape[1] != m:
        raise ValueError("activation_backward: Z, A, dA and dZ_out must have one shape")


@jit_inline
def derivative_elementwise(act, alpha, Z, A, dZ):
    """``_derivative_in_place`` of an elementwise activation, inlined where it is called
    (the training loop's hidden layers call it without softmax's branch)."""
    _check_derivative_shapes(Z, A, dZ)
    n, m = dZ.shape
    _dact_flat(act, dZ.dtype.type(alpha), Z.reshape(n * m), A.reshape(n * m), dZ.reshape(n * m))
