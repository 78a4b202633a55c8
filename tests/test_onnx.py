"""ONNX export (fastnn/onnx.py): the exported graph, run by onnxruntime, gives
``predict``'s outputs; the skl2onnx converters; ``fastnn export``; the errors."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn as fn
from fastnn._kernels import codes
from fastnn.cli import main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastnn.onnx as fx  # noqa: E402  (after the guards: it needs onnx)

README = Path(__file__).resolve().parents[1] / "README.md"
# Every activation code by its registry name (a new activation is exported and checked
# here without touching this file), and the parameterized ones with another alpha too.
ACTIVATIONS = [name.lower() for name in codes.ACTIVATIONS] + [
    {"class_name": "leaky_relu", "config": {"alpha": 1.5}}, {"class_name": "elu", "config": {"alpha": 0.3}}]
TOL = {"float32": 1e-5, "float64": 1e-12}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _randomize(model, seed=1):
    """Non-zero biases and larger weights, so every bias and both branches of each activation count."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=1.0, size=w.shape) for w in model.get_weights()])
    return model


def _model(kind, activation, dtype):
    if kind == "maxout":
        layers = [fn.Maxout(6, pieces=3, input_dim=5), fn.Dense(4, activation=activation)]
    elif kind == "maxout_no_bias":
        layers = [fn.Maxout(6, pieces=2, use_bias=False, input_dim=5), fn.Dense(4, activation=activation)]
    else:
        bias = kind == "dense"
        layers = [fn.Dense(7, activation=activation, use_bias=bias, input_dim=5),
                  fn.Dense(4, activation=activation, use_bias=bias)]
    return _randomize(fn.Sequential(layers, dtype=dtype, seed=0))


def test_every_activation_class_has_a_converter():
    classes = {type(fn.activations.get(name)) for name in fn.activations.registry.names()}
    assert {type(fn.activations.get(name.lower())) for name in codes.ACTIVATIONS} <= classes
    assert classes - set(fx.ACTIVATION_CONVERTERS) == set()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["dense", "dense_no_bias", "maxout", "maxout_no_bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a if isinstance(a, str) else f"{a['class_name']}_alpha")
def test_graph_matches_predict(activation, kind, dtype, tmp_path):
    model = _model(kind, activation, dtype)
    path = tmp_path / "m.onnx"
    model.export_onnx(path)
    session = _session(path)
    rng = np.random.default_rng(2)
    for n in (1, 37):  # the same file: the batch dimension is dynamic
        X = (3 * rng.normal(size=(n, 5))).astype(dtype)
        out = session.run(None, {"input": X})[0]
        assert out.dtype == np.dtype(dtype) and out.shape == (n, 4)
        np.testing.assert_allclose(out, model.predict(X), rtol=0, atol=TOL[dtype])


def test_float64_gelu_is_exact_over_a_wide_range(tmp_path):
    """onnxruntime has no float64 Erf: the exporter's own erf must hold to float64 accuracy."""
    from scipy.special import erf

    model = fn.Sequential([fn.Dense(1, activation="gelu", input_dim=1)], dtype="float64")
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.export_onnx(tmp_path / "g.onnx")
    z = np.concatenate([np.linspace(-40, 40, 100001), [0.0, -1e-300, 1e-300, -np.inf, np.inf]])[:, None]
    out = _session(tmp_path / "g.onnx").run(None, {"input": z})[0]
    with np.errstate(invalid="ignore"):
        exact = 0.5 * z * (1 + erf(z / np.sqrt(2)))
    exact[z == -np.inf] = 0.0  # the limit; z * Phi(z) is nan there in plain arithmetic
    finite = np.isfinite(z)
    np.testing.assert_allclose(out[finite], exact[finite], rtol=1e-14, atol=1e-14)


def test_model_structure(tmp_path):
    model = _model("dense", "relu", "float64")
    model.export_onnx(tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [fx.OPSET]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 5
    weights = {tuple(i.dims) for i in proto.graph.initializer}
    assert {(5, 7), (7,), (7, 4), (4,)} <= weights


def test_export_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = _model("dense", "tanh", "float32")
    model.export_onnx(str(path))
    assert onnx.load(str(path)).graph.output[0].name == "output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left


def test_not_built_is_the_predict_error(tmp_path):
    model = fn.Sequential([fn.Dense(3)])
    with pytest.raises(fn.NotBuiltError, match=r"export_onnx: the model has no weights yet"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_missing_says_how_to_install(tmp_path, monkeypatch):
    for name in ("onnx", "skl2onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # import onnx -> ImportError
    monkeypatch.delitem(sys.modules, "fastnn.onnx")
    monkeypatch.delattr(fn, "onnx")
    model = _model("dense", "relu", "float32")
    with pytest.raises(ImportError, match=re.escape('pip install "fastnn[onnx]"')):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_import_fastnn_does_not_import_onnx():
    code = ("import sys, fastnn as fn; m = fn.Sequential([fn.Dense(2, input_dim=3)]); m.predict([[1, 2, 3]]); "
            "assert not {'onnx', 'onnxruntime', 'skl2onnx'} & set(sys.modules), 'onnx imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_layer_without_converter_is_a_clear_error_and_one_function_adds_it(tmp_path, monkeypatch):
    class Scaled(fn.Dense):  # stands for a new layer class
        pass

    model = _randomize(fn.Sequential([fn.Dense(3, input_dim=2), Scaled(2)], seed=0))
    with pytest.raises(TypeError, match="no converter for layer Scaled.*LAYER_CONVERTERS"):
        model.export_onnx(tmp_path / "m.onnx")
    monkeypatch.setitem(fx.LAYER_CONVERTERS, Scaled, fx.LAYER_CONVERTERS[fn.Dense])
    model.export_onnx(tmp_path / "m.onnx")
    X = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(_session(tmp_path / "m.onnx").run(None, {"input": X})[0], model.predict(X),
                               atol=1e-6)


# ------------------------------------------------------------------ the README
def test_readme_export_snippet_runs(tmp_path, monkeypatch):
    """The first Python block of README.md's "Export and deploy" section, run as is."""
    section = README.read_text().split("## Export and deploy", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Export and deploy)", "exec"), {})
    assert (tmp_path / "model.onnx").exists()


# -------------------------------------------------------------------- the CLI
def test_cli_export(tmp_path, capsys):
    model = _model("maxout", "softmax", "float32")
    model.save(tmp_path / "m.fastnn")
    assert main(["export", str(tmp_path / "m.fastnn"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    X = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_allclose(_session(tmp_path / "m.onnx").run(None, {"input": X})[0], model.predict(X),
                               atol=1e-5)


def test_cli_export_missing_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "absent.fastnn"), str(tmp_path / "m.onnx")])
    assert exc.value.code == 1
    assert "cannot load model" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------- skl2onnx
skl2onnx = pytest.importorskip("skl2onnx")


def _run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4)) * [1, 10, 0.1, 3] + [0, 5, 0, -2]
    return X, rng


@pytest.mark.parametrize("labels", ["binary_int", "multiclass_str"])
@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pipeline", [False, True], ids=["alone", "pipeline"])
def test_skl2onnx_classifier(labels, model_dtype, input_dtype, pipeline, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = data
    X = X.astype(input_dtype)
    score = X[:, 0] + X[:, 1] / 10
    y = (score > 0.5).astype(int) if labels == "binary_int" else np.array(["lo", "mid", "hi"])[np.digitize(score, [0, 1])]
    clf = fn.MLPClassifier((8,), activation="gelu", max_iter=30, random_state=0, dtype=model_dtype)
    est = make_pipeline(StandardScaler(), clf) if pipeline else clf
    est.fit(X if pipeline else (X - X.mean(0)) / X.std(0), y)
    Xin = X if pipeline else ((X - X.mean(0)) / X.std(0)).astype(input_dtype)
    onx = skl2onnx.to_onnx(est, Xin[:1], options={"zipmap": False})
    label, proba = _run(onx, Xin)
    assert proba.dtype == input_dtype and proba.shape == (len(X), len(np.unique(y)))
    np.testing.assert_array_equal(label, est.predict(Xin))
    np.testing.assert_allclose(proba, est.predict_proba(Xin), rtol=0, atol=1e-5)


def test_skl2onnx_classifier_zipmap_default(data):
    X, _ = data
    X = X.astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = fn.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, y)
    label, proba = _run(skl2onnx.to_onnx(clf, X[:1]), X)  # skl2onnx's default: a list of {class: p}
    np.testing.assert_array_equal(label, clf.predict(X))
    np.testing.assert_allclose([[row[c] for c in clf.classes_] for row in proba], clf.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("n_targets", [1, 2])
def test_skl2onnx_regressor_in_a_pipeline(n_targets, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = data
    Y = np.column_stack([X[:, 0] * 30 + 100, X[:, 1] ** 2])[:, :n_targets]
    y = Y[:, 0] if n_targets == 1 else Y
    reg = make_pipeline(StandardScaler(), fn.MLPRegressor((8,), activation="tanh", max_iter=30, random_state=0,
                                                          dtype="float64", target_scaling=True)).fit(X, y)
    (out,) = _run(skl2onnx.to_onnx(reg, X[:1]), X)
    assert out.shape == (len(X), n_targets)
    np.testing.assert_allclose(out, reg.predict(X).reshape(len(X), -1), rtol=1e-10, atol=1e-8)


def test_skl2onnx_float32_regressor_unscales_targets_far_from_zero_in_the_output_dtype(data):
    """A float32 model's outputs go back to original units in the graph's output dtype
    (double for double input), as predict does in float64: a target mean of 1.7e9 in
    float32 (spacing 128) made every output of the graph the same number."""
    X, _ = data
    y = 1.7e9 + 3 * X[:, 0]
    reg = fn.MLPRegressor((8,), max_iter=30, random_state=0, backend="numpy", target_scaling=True).fit(X, y)
    (out,) = _run(skl2onnx.to_onnx(reg, X[:1].astype(np.float64)), X.astype(np.float64))
    np.testing.assert_allclose(out.ravel(), reg.predict(X), rtol=1e-6, atol=1e-3)
    assert np.std(out) > 1.0


def test_skl2onnx_multilabel_is_refused(data):
    X, _ = data
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 5]).astype(int)
    clf = fn.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, Y)
    with pytest.raises(NotImplementedError, match="multilabel"):
        skl2onnx.to_onnx(clf, X[:1].astype(np.float32))


def test_register_skl2onnx_is_idempotent():
    fx.register_skl2onnx()
    fx.register_skl2onnx()
