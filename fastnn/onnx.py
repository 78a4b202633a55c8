"""Export to ONNX: ``Sequential.export_onnx(path)``, ``fastnn export`` on the
command line, and skl2onnx converters for ``MLPClassifier`` / ``MLPRegressor``.

Needs the optional ``onnx`` package (``pip install "fastnn[onnx]"``), imported
here only, so ``import fastnn`` does not need it.

How a graph is built: each layer class maps to a converter in
``LAYER_CONVERTERS`` and each activation class to one in
``ACTIVATION_CONVERTERS``.  A converter ``f(g, layer_or_activation, x)``
takes the name of its input tensor and returns the name of its output; it adds
nodes and weights only through the small builder ``g`` (``g.const(array)``,
``g.node(op, inputs, **attributes)``, ``g.dtype``, ``g.opset``).  The same
converters therefore serve both the standalone exporter (``_Graph``, on
``onnx.helper``) and skl2onnx (``_SklGraph``, on its scope and container).
Supporting a new layer is one function added to ``LAYER_CONVERTERS``.

Numerics follow the reference kernels (``fastnn/_kernels/numpy``): the graph
computes in the model's dtype (float32 or float64), LeakyReLU / ELU take their
``alpha`` as a tensor of that dtype (the ONNX ``LeakyRelu``/``Elu`` attributes
are float32), softplus is ``max(z, 0) + log(1 + exp(-|z|))``, GELU is the erf
form.  onnxruntime has no float64 ``Erf`` (nor ``Gelu``), so in float64 erf is
computed from a degree-20 Chebyshev series of ``erfcx`` (accurate to a few
1e-15; see ``_erf_float64``).

skl2onnx: ``register_skl2onnx()`` registers the estimators' converters; it runs
when this module is imported if skl2onnx is installed (a failure there only
warns; call the function to see the error).
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings

import numpy as np

from . import activations as acts
from . import layers as layers_mod
from ._archive import write_atomically

OPSET = 18  # ReduceMax takes axes as an input from 18; onnxruntime >= 1.17 runs it
INSTALL_HINT = 'pip install "fastnn[onnx]"'

__all__ = ["ACTIVATION_CONVERTERS", "LAYER_CONVERTERS", "OPSET", "export_onnx", "register_skl2onnx",
           "to_onnx"]


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


class _SklGraph:
    """The same builder interface on skl2onnx's scope and container."""

    def __init__(self, scope, container, dtype):
        self.onnx = _require("onnx")
        self.scope, self.container = scope, container
        self.dtype = np.dtype(dtype)
        self.opset = container.target_opset

    def const(self, value, hint="const", dtype=None):
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.scope.get_unique_variable_name(hint)
        if array.dtype == object:  # strings
            proto, values = self.onnx.TensorProto.STRING, [str(v).encode("utf-8") for v in array.ravel()]
        else:
            proto, values = self.onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.ravel().tolist()
        self.container.add_initializer(name, proto, list(array.shape), values)
        return name

    def node(self, op, inputs, hint=None, **attributes):
        out = self.scope.get_unique_variable_name(hint or op.lower())
        self.container.add_node(op, list(inputs), [out], name=self.scope.get_unique_operator_name(op),
                                **attributes)
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


LAYER_CONVERTERS = {
    layers_mod.Dense: _dense,
    layers_mod.Maxout: _maxout,
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
    the model's dtype, with a dynamic batch dimension."""
    model._require_built("export_onnx")
    onnx = _require("onnx")
    helper = onnx.helper
    if opset < 13:
        raise ValueError(f"opset: expected 13 or later (Softmax over the last axis), got {opset}")
    g = _Graph(model.dtype, opset)
    out = convert_layers(g, model.layers, "input")
    g.nodes.append(helper.make_node("Identity", [out], ["output"], name="output_op"))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(model.dtype))
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info("input", elem, ["batch", model.input_dim])],
        [helper.make_tensor_value_info("output", elem, ["batch", model.output_dim])],
        initializer=g.initializers)
    from . import __version__

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastnn", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime >= 1.17
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, opset: int = OPSET) -> None:
    """Write ``to_onnx(model)`` to ``path`` atomically (temporary file, then rename)."""
    proto = to_onnx(model, opset)
    data = proto.SerializeToString()
    write_atomically(path, lambda f: f.write(data))


# ----------------------------------------------------------------- skl2onnx
def _check_input_dtype(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    t = operator.inputs[0].type
    if not isinstance(t, (FloatTensorType, DoubleTensorType)):
        raise TypeError(f"{type(operator.raw_operator).__name__}: ONNX input must be float or double, "
                        f"got {type(t).__name__}")


def _network(scope, operator, container):
    """Cast the input to the model's dtype, run the layers; returns
    ``(builder, name of the output activations, input proto dtype)``."""
    onnx = _require("onnx")
    est = operator.raw_operator
    model = est.model_
    g = _SklGraph(scope, container, model.dtype)
    in_proto = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    model_proto = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(model.dtype))
    x = operator.inputs[0].full_name
    if in_proto != model_proto:
        x = g.node("Cast", [x], "cast_input", to=model_proto)
    return g, convert_layers(g, model.layers, x), in_proto


def _skl_classifier_shapes(operator):
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    _check_input_dtype(operator)
    if getattr(operator.raw_operator, "_target_kind", None) == "multilabel":
        raise NotImplementedError("MLPClassifier: ONNX conversion of multilabel targets is not supported")
    calculate_linear_classifier_output_shapes(operator)


def _skl_regressor_shapes(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    _check_input_dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    out_type = type(operator.inputs[0].type)
    operator.outputs[0].type = out_type([n, operator.raw_operator.model_.output_dim])
    assert out_type in (FloatTensorType, DoubleTensorType)


def _skl_classifier(scope, operator, container):
    """Outputs as skl2onnx's converter for sklearn's MLPClassifier: the label
    (int64 or string) and the probabilities ``(n, n_classes)`` in the input's dtype."""
    onnx = _require("onnx")
    est = operator.raw_operator
    g, p, in_proto = _network(scope, operator, container)
    if est._target_kind == "binary":  # one sigmoid unit -> [1 - p, p]
        p = g.node("Concat", [g.node("Sub", [g.const(1.0, "one"), p]), p], axis=1)
    if in_proto != onnx.helper.np_dtype_to_tensor_dtype(g.dtype):
        p = g.node("Cast", [p], "cast_output", to=in_proto)
    container.add_node("Identity", [p], [operator.outputs[1].full_name],
                       name=scope.get_unique_operator_name("Identity"))
    # label = classes_[argmax(p)]  (ties go to the first class, as predict)
    classes = est.classes_
    index = g.node("ArgMax", [p], axis=1, keepdims=0)
    if np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_ or \
            np.issubdtype(classes.dtype, np.floating):
        table = g.const(classes.astype(np.int64), "classes", np.int64)
    else:
        table = g.const(np.array([str(c) for c in classes], dtype=object), "classes", object)
    container.add_node("Gather", [table, index], [operator.outputs[0].full_name], axis=0,
                       name=scope.get_unique_operator_name("Gather"))


def _skl_regressor(scope, operator, container):
    est = operator.raw_operator
    g, y, in_proto = _network(scope, operator, container)
    if est.target_mean_ is not None:  # target_scaling: back to original units
        y = g.node("Add", [g.node("Mul", [y, g.const(est.target_scale_, "target_scale")]),
                           g.const(est.target_mean_, "target_mean")])
    onnx = _require("onnx")
    if in_proto != onnx.helper.np_dtype_to_tensor_dtype(g.dtype):
        y = g.node("Cast", [y], "cast_output", to=in_proto)
    container.add_node("Identity", [y], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Identity"))


_registered = False


def register_skl2onnx() -> None:
    """Register converters so that ``skl2onnx.to_onnx`` / ``convert_sklearn`` handle
    ``fastnn.MLPClassifier`` and ``fastnn.MLPRegressor`` (alone or in a Pipeline).
    Idempotent; raises ImportError without skl2onnx."""
    global _registered
    if _registered:
        return
    skl2onnx = _require("skl2onnx")
    from .sklearn import MLPClassifier, MLPRegressor

    skl2onnx.update_registered_converter(
        MLPClassifier, "FastnnMLPClassifier", _skl_classifier_shapes, _skl_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    skl2onnx.update_registered_converter(
        MLPRegressor, "FastnnMLPRegressor", _skl_regressor_shapes, _skl_regressor)
    _registered = True


def _auto_register():
    if importlib.util.find_spec("skl2onnx") is None:
        return
    try:
        register_skl2onnx()
    except Exception as e:  # an incompatible skl2onnx must not break the exporter
        warnings.warn(f"fastnn.onnx: could not register the skl2onnx converters ({e}); "
                      "call fastnn.onnx.register_skl2onnx() to see the error", RuntimeWarning, stacklevel=2)


_auto_register()
