"""Export a ``Sequential`` to ONNX: the graph builder and the converters
behind ``Sequential.export_onnx``; ``fastnn.onnx`` is the public module (it
re-exports these and adds the skl2onnx converters).  Kept apart from it so the
model imports the exporter without importing the scikit-learn estimators.

Needs the optional ``onnx`` package (``pip install "fastnn[onnx]"``), imported
inside the functions only, so ``import fastnn`` does not need it.

How a graph is built: each layer class maps to a converter in
``LAYER_CONVERTERS`` and each activation class to one in
``ACTIVATION_CONVERTERS``.  A converter ``f(g, layer_or_activation, x)``
takes the name of its input tensor and returns the name of its output; it adds
nodes and weights only through the small builder ``g`` (``g.const(array)``,
``g.node(op, inputs, **attributes)``, ``g.dtype``, ``g.opset``).  The same
converters therefore serve both the standalone exporter (``_Graph``, on
``onnx.helper``) and skl2onnx (``fastnn.onnx._SklGraph``, on its scope and
container).  Supporting a new layer is one function added to ``LAYER_CONVERTERS``.

Numerics follow the reference kernels (``fastnn/_kernels/numpy``): the graph
computes in the model's dtype (float32 or float64), LeakyReLU / ELU take their
``alpha`` as a tensor of that dtype (the ONNX ``LeakyRelu``/``Elu`` attributes
are float32), softplus is ``max(z, 0) + log(1 + exp(-|z|))``, GELU is the erf
form.  onnxruntime has no float64 ``Erf`` (nor ``Gelu``), so in float64 erf is
computed from a degree-20 Chebyshev series of ``erfcx`` (accurate to a few
1e-15; see ``_one_plus_erf_float64``).
"""
from __future__ import annotations

import importlib

import numpy as np

from . import activations as acts
from . import layers as layers_mod
from .normalization import Normalization
from ._archive import write_atomically

OPSET = 18  # ReduceMax takes axes as an input from 18; onnxruntime >= 1.17 runs it
INSTALL_HINT = 'pip install "fastnn[onnx]"'

__all__ = ["ACTIVATION_CONVERTERS", "LAYER_CONVERTERS", "OPSET", "convert_activation", "convert_layers",
           "export_onnx", "to_onnx"]


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"ONNX export needs the {module.split('.')[0]} package: {INSTALL_HINT}") from e


# ------------------------------------------------------------------ builders
class _Graph:
    """Collects nodes and initializers for ``onnx.helper.make_graph``."""

    def __init__(self, dtype, opset=OPSET):
        self.onnx = _require("onnx")
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.nodes, self.initializers = [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint="const", dtype=None):
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self._name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, hint=None, **attributes):
        out = self._name(hint or op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=f"{out}_op", **attributes))
        return out


# --------------------------------------------------------------- activations
def _linear(g, a, z):
    return z


def _op(op_type):
    def convert(g, a, z):
        return g.node(op_type, [z])
    convert.__name__ = f"_{op_type.lower()}"
    return convert


def _leaky_relu(g, a, z):  # max(z, alpha z) for alpha <= 1, min otherwise, as the kernels
    scaled = g.node("Mul", [z, g.const(a.alpha, "alpha")])
    return g.node("Max" if a.alpha <= 1 else "Min", [z, scaled])


def _elu(g, a, z):  # z > 0 ? z : alpha (e^min(z, 0) - 1)
    negative = g.node("Min", [z, g.const(0.0, "zero")])
    em1 = g.node("Sub", [g.node("Exp", [negative]), g.const(1.0, "one")])
    scaled = g.node("Mul", [em1, g.const(a.alpha, "alpha")])
    return g.node("Where", [g.node("Greater", [z, g.const(0.0, "zero")]), z, scaled])


def _softmax(g, a, z):
    return g.node("Softmax", [z], axis=-1)


def _softplus(g, a, z):  # max(z, 0) + log(1 + e^-|z|): no overflow for large |z|
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [z])])])
    log1p = g.node("Log", [g.node("Add", [tail, g.const(1.0, "one")])])
    return g.node("Add", [g.node("Max", [z, g.const(0.0, "zero")]), log1p])


def _gelu(g, a, z):  # 0.5 z (1 + erf(z / sqrt 2))
    x = g.node("Mul", [z, g.const(np.sqrt(0.5), "sqrt_half")])
    if g.dtype == np.float32:
        one_plus_erf = g.node("Add", [g.node("Erf", [x]), g.const(1.0, "one")])
    else:
        one_plus_erf = _one_plus_erf_float64(g, x)
    return g.node("Mul", [g.node("Mul", [z, one_plus_erf]), g.const(0.5, "half")])


def _swish(g, a, z):
    return g.node("Mul", [z, g.node("Sigmoid", [z])])


ACTIVATION_CONVERTERS = {
    acts.Linear: _linear,
    acts.Sigmoid: _op("Sigmoid"),
    acts.Tanh: _op("Tanh"),
    acts.ReLU: _op("Relu"),
    acts.LeakyReLU: _leaky_relu,
    acts.ELU: _elu,
    acts.Softmax: _softmax,
    acts.Softplus: _softplus,
    acts.GELU: _gelu,
    acts.Swish: _swish,
}

# erf in float64: onnxruntime's Erf is float32 only.  For u = |x| clipped to
# [0, _ERF_U], erfc(u) = exp(-u^2) erfcx(u), and erfcx is smooth in t = 2 / (2 + u),
# so a Chebyshev series in t (interpolated once from scipy's erfcx) gives erfc to
# a few 1e-15 absolute; beyond _ERF_U, erfc(u) < 1e-44.  Then
# 1 + erf(x) = 2 - erfc(u) for x >= 0 and erfc(u) for x < 0.
_ERF_U, _ERF_DEGREE = 10.0, 20
_erfcx_series = None


def _erfcx_chebyshev():
    global _erfcx_series
    if _erfcx_series is None:
        from numpy.polynomial import chebyshev
        from scipy.special import erfcx

        t_min = 2.0 / (2.0 + _ERF_U)

        def f(s):  # s in [-1, 1] -> t in [t_min, 1] -> u
            t = (s + 1) / 2 * (1 - t_min) + t_min
            return erfcx(2.0 / t - 2.0)

        _erfcx_series = (t_min, chebyshev.chebinterpolate(f, _ERF_DEGREE))
    return _erfcx_series


def _one_plus_erf_float64(g, x):
    t_min, c = _erfcx_chebyshev()
    u = g.node("Min", [g.node("Abs", [x]), g.const(_ERF_U, "erf_u_max")])
    t = g.node("Div", [g.const(2.0, "two"), g.node("Add", [u, g.const(2.0, "two")])])
    # s = (t - t_min) * 2 / (1 - t_min) - 1, then Clenshaw: b_k = c_k + 2 s b_{k+1} - b_{k+2}
    s = g.node("Sub", [g.node("Mul", [g.node("Sub", [t, g.const(t_min, "t_min")]),
                                      g.const(2.0 / (1.0 - t_min), "t_scale")]), g.const(1.0, "one")])
    two_s = g.node("Add", [s, s])
    b1 = b2 = None
    for k in range(len(c) - 1, 0, -1):
        term = g.const(c[k], "cheb")
        if b1 is not None:
            term = g.node("Add", [g.node("Mul", [two_s, b1]), term])
        if b2 is not None:
            term = g.node("Sub", [term, b2])
        b1, b2 = term, b1
    series = g.node("Sub", [g.node("Add", [g.node("Mul", [s, b1]), g.const(c[0], "cheb")]), b2])
    erfc = g.node("Mul", [g.node("Exp", [g.node("Neg", [g.node("Mul", [u, u])])]), series])
    upper = g.node("Sub", [g.const(2.0, "two"), erfc])
    return g.node("Where", [g.node("Less", [x, g.const(0.0, "zero")]), erfc, upper])


def convert_activation(g, activation, z):
    try:
        convert = ACTIVATION_CONVERTERS[type(activation)]
    except KeyError:
        raise TypeError(f"ONNX export: no converter for activation {type(activation).__name__}; "
                        "add one to fastnn.onnx.ACTIVATION_CONVERTERS") from None
    return convert(g, activation, z)


# -------------------------------------------------------------------- layers
def _affine(g, layer, x):
    z = g.node("MatMul", [x, g.const(layer.W, "W")])
    return g.node("Add", [z, g.const(layer.b, "b")]) if layer.use_bias else z


def _dense(g, layer, x):
    return convert_activation(g, layer.activation, _affine(g, layer, x))


def _maxout(g, layer, x):  # (n, units * pieces) -> (n, units, pieces) -> max over pieces
    pieces = g.node("Reshape", [_affine(g, layer, x),
                                g.const([-1, layer.units, layer.pieces], "shape", np.int64)])
    if g.opset >= 18:
        return g.node("ReduceMax", [pieces, g.const([2], "axes", np.int64)], keepdims=0)
    return g.node("ReduceMax", [pieces], axes=[2], keepdims=0)


def _normalization(g, norm, x):  # (x - mean) / scale, as Normalization.transform
    norm._require_adapted("ONNX export")
    centered = g.node("Sub", [x, g.const(norm.mean, "mean")])
    return g.node("Div", [centered, g.const(norm.scale, "scale")])


def _denormalization(g, norm, y):  # y * scale + mean, as Normalization.inverse_transform
    norm._require_adapted("ONNX export")
    return g.node("Add", [g.node("Mul", [y, g.const(norm.scale, "scale")]), g.const(norm.mean, "mean")])


LAYER_CONVERTERS = {
    layers_mod.Dense: _dense,
    layers_mod.Maxout: _maxout,
    Normalization: _normalization,
}


def convert_layers(g, layers, x):
    """Add the nodes of ``layers`` applied to tensor ``x``; returns the output's name."""
    for layer in layers:
        try:
            convert = LAYER_CONVERTERS[type(layer)]
        except KeyError:
            raise TypeError(f"ONNX export: no converter for layer {type(layer).__name__}; "
                            "add one to fastnn.onnx.LAYER_CONVERTERS") from None
        x = convert(g, layer, x)
    return x


# ------------------------------------------------------------------- export
def to_onnx(model, opset: int = OPSET):
    """The ``onnx.ModelProto`` of a built ``Sequential``: input ``"input"``
    ``(batch, input_dim)``, output ``"output"`` ``(batch, output_dim)``, both of
    the model's dtype, with a dynamic batch dimension; the input ``Normalization``
    and ``target_normalization`` are part of the graph (it takes raw rows and
    answers as ``predict`` does)."""
    model._require_built("export_onnx")
    onnx = _require("onnx")
    helper = onnx.helper
    if opset < 13:
        raise ValueError(f"opset: expected 13 or later (Softmax over the last axis), got {opset}")
    g = _Graph(model.dtype, opset)
    layers = model.layers if model.input_normalizer is None else [model.input_normalizer, *model.layers]
    out = convert_layers(g, layers, "input")
    if model.target_normalizer is not None:  # predict() answers in the targets' original units
        out = _denormalization(g, model.target_normalizer, out)
    g.nodes.append(helper.make_node("Identity", [out], ["output"], name="output_op"))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(model.dtype))
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info("input", elem, ["batch", model.input_dim])],
        [helper.make_tensor_value_info("output", elem, ["batch", model.output_dim])],
        initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fastnn")
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime >= 1.17
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, opset: int = OPSET) -> None:
    """Write ``to_onnx(model)`` to ``path`` atomically (temporary file, then rename)."""
    proto = to_onnx(model, opset)
    data = proto.SerializeToString()
    write_atomically(path, lambda f: f.write(data))
