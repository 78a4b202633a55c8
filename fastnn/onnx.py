"""ONNX export: ``to_onnx`` / ``export_onnx`` for a ``Sequential`` (also
``Sequential.export_onnx`` and ``fastnn export`` on the command line), and
skl2onnx converters for ``MLPClassifier`` / ``MLPRegressor``.

Needs ``pip install "fastnn[onnx]"`` (onnx, onnxruntime, skl2onnx).  The graph
and its converters live in ``fastnn._onnx`` (see its notes);
``LAYER_CONVERTERS`` and ``ACTIVATION_CONVERTERS`` here are the same dicts.

skl2onnx: importing this module registers the estimators' converters when
skl2onnx is installed, so ``import fastnn.onnx`` before ``skl2onnx.to_onnx``
is enough; a registration failure there (say, an incompatible skl2onnx) only
warns, so the exporter stays usable; ``register_skl2onnx()`` registers
explicitly and raises.  The converters emit the same nodes as the exporter
and, for classifiers, the ``label`` and ``probabilities`` outputs that
skl2onnx's converter for scikit-learn's ``MLPClassifier`` gives (options
``zipmap`` and ``nocl`` as there).  Multilabel classifiers are not supported.
"""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np

from ._onnx import (ACTIVATION_CONVERTERS, INSTALL_HINT, LAYER_CONVERTERS, OPSET, _require, convert_activation,
                    convert_layers, export_onnx, to_onnx)

__all__ = ["ACTIVATION_CONVERTERS", "INSTALL_HINT", "LAYER_CONVERTERS", "OPSET", "convert_activation",
           "convert_layers", "export_onnx", "register_skl2onnx", "to_onnx"]


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
    onnx = _require("onnx")
    if in_proto != onnx.helper.np_dtype_to_tensor_dtype(g.dtype):
        y = g.node("Cast", [y], "cast_output", to=in_proto)
    if est.target_mean_ is not None:  # target_scaling: back to original units in the output's dtype
        # (predict does it in float64: a float32 target mean far from zero would lose its digits)
        out = onnx.helper.tensor_dtype_to_np_dtype(in_proto)
        y = g.node("Add", [g.node("Mul", [y, g.const(est.target_scale_, "target_scale", out)]),
                           g.const(est.target_mean_, "target_mean", out)])
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
