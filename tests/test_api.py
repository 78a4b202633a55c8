"""The public model API: registries, weights, save/load, callbacks, verbosity."""
import math
import os

import numpy as np
import pytest

import fastnn as fn


def small_model(backend="numpy", dtype="float32", seed=0, output="softmax"):
    model = fn.Sequential([
        fn.Dense(8, activation="relu", input_dim=4, kernel_initializer="he_normal"),
        fn.Dense(3, activation=output),
    ], backend=backend, dtype=dtype, seed=seed)
    return model


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) + np.eye(3, 4)[y] * 3
    return X, y


# ---------------------------------------------------------------- registries
@pytest.mark.parametrize("module,name,cls", [
    (fn.activations, "leaky_relu", fn.activations.LeakyReLU),
    (fn.optimizers, "adam", fn.optimizers.Adam),
    (fn.losses, "mse", fn.losses.MeanSquaredError),
    (fn.initializers, "he_normal", fn.initializers.HeNormal),
    (fn.schedules, "cosine", fn.schedules.CosineDecay),
    (fn.metrics, "accuracy", fn.metrics.Accuracy),
])
def test_strings_and_objects_are_interchangeable(module, name, cls):
    obj = module.get(name)
    assert isinstance(obj, cls)
    assert module.get(obj) is obj
    assert module.get(module.registry.serialize(obj)) == obj
    with pytest.raises(ValueError, match=name):  # the error lists the valid names
        module.get("no_such_thing")


def test_unknown_names_in_layers_and_compile_list_valid_choices():
    with pytest.raises(ValueError, match=r"activation.*'relux'.*relu"):
        fn.Dense(3, activation="relux")
    model = small_model()
    with pytest.raises(ValueError, match=r"optimizer.*'adamw'.*adagrad"):
        model.compile(optimizer="adamw", loss="mse")
    with pytest.raises(ValueError, match=r"loss.*'crossentropy'.*binary_crossentropy"):
        model.compile(optimizer="sgd", loss="crossentropy")
    with pytest.raises(TypeError, match="optimizer"):
        model.compile(optimizer=3, loss="mse")


def test_activation_objects_with_parameters():
    act = fn.activations.LeakyReLU(alpha=0.1)
    np.testing.assert_allclose(act(np.array([-2.0, 3.0])), [-0.2, 3.0])
    np.testing.assert_allclose(act.derivative(np.array([-2.0, 3.0])), [0.1, 1.0])
    model = fn.Sequential([fn.Dense(2, activation=act, input_dim=2)])
    assert model.layers[0].activation.alpha == 0.1
    np.testing.assert_allclose(fn.activations.get("elu")(np.array([0.0, -1e9])), [0.0, -1.0])
    np.testing.assert_allclose(fn.activations.get("softmax")(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])


# ------------------------------------------------------------------- weights
def test_weights_keras_order_and_shapes():
    model = small_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 8), (8,), (8, 3), (3,)]
    assert model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    new = [np.full(s, i, np.float32) for i, s in enumerate(shapes)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    got = model.get_weights()
    got[0][...] = 99  # get_weights returns copies
    assert model.get_weights()[0][0, 0] == 0


def test_same_seed_same_model_and_same_training():
    X, y = blobs()
    runs = []
    for _ in range(2):
        model = small_model(seed=7)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        runs.append((model.get_weights(), model.fit(X, y, epochs=3, batch_size=16, verbose=0).history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    other = small_model(seed=8)
    assert not np.array_equal(other.get_weights()[0], runs[0][0][0])


def test_input_dim_inferred_by_fit():
    X, y = blobs()
    model = fn.Sequential([fn.Dense(5, activation="tanh"), fn.Dense(3, activation="softmax")], seed=0)
    assert not model.built
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=1, verbose=0)
    assert model.built and model.get_weights()[0].shape == (4, 5)


def test_a_layer_of_one_model_cannot_join_another():
    X, y = blobs()
    layers = [fn.Dense(8, "relu", input_dim=4), fn.Dense(3, "softmax")]
    first = fn.Sequential(layers, name="first")
    first.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    first.fit(X, y, epochs=2, verbose=0)
    trained, outputs = first.get_weights(), first.predict(X)
    with pytest.raises(ValueError, match=r"layer: Dense\(8, activation='relu'\) already belongs to the model 'first'"):
        fn.Sequential(layers, seed=1)
    second = fn.Sequential([fn.Dense(8, "relu", input_dim=4)])
    with pytest.raises(ValueError, match="already belongs to the model 'first'"):
        second.add(layers[1])
    with pytest.raises(ValueError, match="already layer 0 of this model"):
        second.add(second.layers[0])
    np.testing.assert_array_equal(first.predict(X), outputs)  # first model untouched
    for w, w0 in zip(first.get_weights(), trained):
        np.testing.assert_array_equal(w, w0)
    del first
    import gc; gc.collect()
    assert fn.Sequential(layers).layers == layers  # free again once their model is gone
    free = fn.Dense(3, input_dim=4)
    with pytest.raises(ValueError, match="input_dim"):
        fn.Sequential([free, fn.Dense(2, input_dim=5)])
    assert fn.Sequential([free]).layers == [free]  # a failed construction keeps no layer


@pytest.mark.parametrize("when", ["unbuilt", "built", "fitted"])
def test_add_after_compile_asks_for_compile_again(when, tmp_path):
    X, y = blobs()
    model = fn.Sequential([fn.Dense(8, "relu", input_dim=None if when == "unbuilt" else 4)])
    model.compile("adam", "mse")
    if when == "fitted":
        model.fit(X, np.ones((len(X), 8)), verbose=0)
    model.add(fn.Dense(3))  # linear: sparse categorical cross-entropy needs softmax
    assert not model.compiled
    calls = [lambda: model.fit(X, y, verbose=0)]
    if model.built:
        calls.append(lambda: model.evaluate(X, np.eye(3)[y]))
    for call in calls:
        with pytest.raises(ValueError, match=r"layers were added after compile\(\); call model.compile"):
            call()
    with pytest.raises(ValueError, match="softmax"):
        model.compile("adam", "sparse_categorical_crossentropy")
    model.compile("adam", "mse")
    assert model.fit(X, np.eye(3)[y], verbose=0).history["loss"][0] > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_kept_end_to_end(dtype):
    X, y = blobs()
    model = small_model(dtype=dtype)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X.astype(np.float64), y, epochs=1, verbose=0)
    assert all(w.dtype == np.dtype(dtype) for w in model.get_weights())
    assert all(s.dtype == np.dtype(dtype) for s in model.optimizer.get_state())
    assert model.predict(X).dtype == np.dtype(dtype)


def test_summary_lists_layers_and_parameter_count(capsys):
    small_model().summary()
    out = capsys.readouterr().out
    assert "Dense" in out and "(None, 8)" in out and "Total params: 67" in out


# --------------------------------------------------------------- save / load
def test_save_and_load_round_trip_resumes_training_exactly(tmp_path):
    X, y = blobs()
    model = small_model()
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    path = tmp_path / "m.fastnn"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.fastnn"]  # no temporary file left behind
    loaded = fn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert isinstance(loaded.optimizer, fn.optimizers.Adam) and loaded.optimizer.learning_rate == 0.01
    h1 = model.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    h2 = loaded.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]


def test_save_preserves_schedules_and_custom_activations(tmp_path):
    model = fn.Sequential([fn.Dense(3, activation=fn.activations.ELU(alpha=0.5), input_dim=2),
                           fn.Maxout(2, pieces=3), fn.Dense(1)], dtype="float64", seed=3)
    schedule = fn.schedules.Warmup(fn.schedules.CosineDecay(0.1, decay_steps=50), warmup_steps=5)
    model.compile(optimizer=fn.optimizers.SGD(schedule, momentum=0.9, nesterov=True), loss="mae", metrics=["mae"])
    model.save(tmp_path / "m.fastnn")
    loaded = fn.load_model(tmp_path / "m.fastnn")
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.dtype == "float64"


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "m.fastnn"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        small_model(seed=9).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.fastnn"]


def test_save_through_a_symbolic_link_replaces_its_target(tmp_path):
    """As ``open(link, "wb")``: the link stays and its target holds the model; a link to a
    folder is refused as the folder itself is, and nothing is left behind."""
    models = tmp_path / "models"
    models.mkdir()
    target = models / "m.fastnn"
    small_model().save(target)
    link = tmp_path / "latest.fastnn"
    link.symlink_to(target)
    model = small_model(seed=3)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(fn.load_model(target).get_weights()[0], model.get_weights()[0])
    to_folder = tmp_path / "folder-link"
    to_folder.symlink_to(models)
    with pytest.raises(IsADirectoryError):
        model.save(to_folder)
    assert to_folder.is_symlink() and sorted(p.name for p in models.iterdir()) == ["m.fastnn"]
    with pytest.raises(IsADirectoryError):
        model.save(models)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04garbage"])
def test_loading_corrupt_files_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.fastnn"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fn.load_model(path)


def test_loading_foreign_npz_or_pickles_is_refused(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    with pytest.raises(ValueError, match="no 'config' entry"):
        fn.load_model(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, config=np.array([{"format": "fastnn"}], dtype=object))
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fn.load_model(pickled)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, config=np.frombuffer(b'{"format": "other"}', np.uint8))
    with pytest.raises(ValueError, match="format 'other'"):
        fn.load_model(wrong)
    with pytest.raises(FileNotFoundError):
        fn.load_model(tmp_path / "missing.fastnn")


def test_load_model_checks_its_arguments_before_the_file(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model().save(path)
    with pytest.raises(ValueError, match=r"^backend: expected one of .*got 'gpu'"):
        fn.load_model(path, backend="gpu")
    with pytest.raises(TypeError, match=r"backend: expected a backend name or None, got int 3"):
        fn.load_model(path, backend=3)
    with pytest.raises(IsADirectoryError, match=r"path: .* is a directory, expected a file"):
        fn.load_model(tmp_path)
    with pytest.raises(TypeError, match=r"path: expected a file name \(str, bytes or os.PathLike\), got NoneType None"):
        fn.load_model(None)


def test_bytes_paths_save_and_load(tmp_path):
    model = small_model()
    path = os.fsencode(tmp_path / "m.fastnn")
    model.save(path)
    X = np.random.default_rng(0).standard_normal((4, model.input_dim))
    np.testing.assert_array_equal(fn.load_model(path).predict(X), model.predict(X))
    with pytest.raises(TypeError, match=r"path: expected a file name .*got int 3"):
        model.save(3)


def test_truncated_model_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="fastnn model file"):
        fn.load_model(path)


# ----------------------------------------------------------------- callbacks
def test_history_and_validation_metrics():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history.epoch == [0, 1, 2] and len(history.history["val_loss"]) == 3
    assert history.params["samples"] == 90
    assert model.history is history
    val = model.evaluate(X[90:], y[90:])
    assert val["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


class PerBatch(fn.callbacks.Callback):
    def on_batch_end(self, batch, logs=None):
        pass


@pytest.mark.parametrize("metrics", [["accuracy", "accuracy"], ["mse", fn.metrics.MeanSquaredError()]])
def test_a_metric_listed_twice_is_reported_once(metrics):
    X, y = blobs()
    Y = np.eye(3)[y]
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=metrics)
    assert [name for name, _ in model.metrics] == [metrics[0]]
    name = metrics[0]
    single = float(fn.metrics.get(name)(Y, model.predict(X)))
    assert model.evaluate(X, Y)[name] == pytest.approx(single, rel=1e-6)
    for callbacks in ([], [PerBatch()]):  # the compiled and the per-batch fit paths
        before = float(fn.metrics.get(name)(Y, model.predict(X)))
        model.optimizer.learning_rate = 1e-12
        h = model.fit(X, Y, batch_size=200, callbacks=callbacks, verbose=0)
        assert h.history[name][0] == pytest.approx(before, rel=1e-5)


def test_early_stopping_restores_best_weights():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer=fn.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    best = {}

    class Spy(fn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            best[epoch] = (logs["loss"], model.get_weights())

    stop = fn.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0, restore_best_weights=True)
    history = model.fit(X, y, epochs=20, callbacks=[Spy(), stop], verbose=0)
    assert len(history.epoch) == 2  # nothing improves by 10: stop after patience + 1 epochs
    assert stop.best_epoch == 0
    for w, w0 in zip(model.get_weights(), best[0][1]):
        np.testing.assert_array_equal(w, w0)


def test_early_stopping_starts_from_an_epoch_and_says_what_it_does(capsys):
    """Keras's start_from_epoch (the epochs before it are not watched) and verbose=1 (a line
    when it stops and one when it restores the best weights)."""
    X, y = blobs()
    model = small_model()
    model.compile(optimizer=fn.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    stop = fn.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0, restore_best_weights=True,
                                      start_from_epoch=3, verbose=1)
    history = model.fit(X, y, epochs=20, callbacks=[stop], verbose=0)
    assert len(history.epoch) == 5 and stop.best_epoch == 3 and stop.stopped_epoch == 4
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 5: early stopping", "Restoring model weights from the end of the best epoch: 4."]
    with pytest.raises(ValueError, match="start_from_epoch: expected an integer >= 0, got -1"):
        fn.callbacks.EarlyStopping(start_from_epoch=-1)
    with pytest.raises(ValueError, match="verbose: expected 0 or 1, got 2"):
        fn.callbacks.EarlyStopping(verbose=2)


def test_reduce_lr_on_plateau_says_when_it_reduces(capsys):
    X, y = blobs()
    model = small_model()
    model.compile(optimizer=fn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    reduce = fn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0, verbose=1)
    model.fit(X, y, epochs=3, callbacks=[reduce], verbose=0)
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05.",
        "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.025."]


def test_reduce_lr_on_plateau_and_terminate_on_nan():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer=fn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    reduce = fn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    history = model.fit(X, y, epochs=3, callbacks=[reduce], verbose=0)
    # epoch 0 improves on +inf; epochs 1 and 2 do not improve by min_delta: halve each time.
    # "lr" is logged before the callbacks run, so it shows the rate the epoch trained with.
    assert history.history["lr"] == [0.1, 0.1, 0.05]
    assert model.optimizer.learning_rate == 0.025

    model = small_model(output="linear")
    model.compile(optimizer=fn.optimizers.SGD(1e6), loss="mse")
    with pytest.warns(RuntimeWarning):
        history = model.fit(X, np.eye(3)[y] * 1e30, epochs=5, batch_size=8,
                            callbacks=[fn.callbacks.TerminateOnNaN()], verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())  # never a NaN model
    assert len(history.epoch) < 5


def test_classic_stopping_criteria():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    y = X @ np.array([[2.0], [-1.0]]) + 0.5
    for callback in (fn.callbacks.GradientNormStopping(tol=1e-3), fn.callbacks.WeightChangeStopping(tol=1e-5),
                     fn.callbacks.LossPlateauStopping(tol=1e-9)):
        model = fn.Sequential([fn.Dense(1, input_dim=2)], dtype="float64", seed=0)
        model.compile(optimizer=fn.optimizers.SGD(0.3), loss="half_squared_error")
        history = model.fit(X, y, epochs=2000, batch_size=None, callbacks=[callback], verbose=0)
        assert len(history.epoch) < 2000, type(callback).__name__
        W, b = model.get_weights()
        np.testing.assert_allclose(W[:, 0], [2.0, -1.0], atol=1e-2)
        np.testing.assert_allclose(b, [0.5], atol=1e-2)


def test_interrupted_fit_leaves_model_and_history_usable():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Interrupt(fn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.history.epoch == [0, 1] and batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=10, batch_size=16, callbacks=[Interrupt()], verbose=0)
    assert model.history.epoch == [0, 1]
    assert len(model.history.history["loss"]) == 2
    assert np.all(np.isfinite(model.predict(X)))
    model.fit(X, y, epochs=1, verbose=0)  # and training can go on


class FailsAtTrainEnd(fn.callbacks.Callback):
    def on_train_end(self, logs=None):
        raise ValueError("cannot end")


class RecordsTrainEnd(fn.callbacks.Callback):
    ended = False

    def on_train_end(self, logs=None):
        self.ended = True


class InterruptsInEpoch(fn.callbacks.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.model.history.epoch == list(range(self.epoch)) and batch == 2:
            raise KeyboardInterrupt


def test_an_interrupt_is_not_replaced_by_an_error_of_on_train_end():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    after = RecordsTrainEnd()
    with pytest.warns(RuntimeWarning, match=r"FailsAtTrainEnd\.on_train_end raised ValueError: cannot end"):
        with pytest.raises(KeyboardInterrupt) as raised:
            model.fit(X, y, epochs=10, batch_size=16, verbose=0,
                      callbacks=[InterruptsInEpoch(2), FailsAtTrainEnd(), after])
    if hasattr(raised.value, "add_note"):
        assert any("FailsAtTrainEnd.on_train_end raised ValueError" in n for n in raised.value.__notes__)
    assert after.ended  # the callbacks after the failing one still end
    assert model.history.epoch == [0, 1] and len(model.history.history["loss"]) == 2
    assert np.all(np.isfinite(model.predict(X)))
    model.fit(X, y, epochs=1, verbose=0)


def test_an_interrupt_is_not_replaced_by_an_error_of_on_train_end_even_with_warnings_as_errors():
    import warnings

    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, epochs=10, batch_size=16, verbose=0,
                      callbacks=[InterruptsInEpoch(1), FailsAtTrainEnd()])
    assert model.history.epoch == [0]


def test_an_error_of_on_train_end_at_a_normal_end_propagates():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="cannot end"):
        model.fit(X, y, epochs=2, batch_size=40, verbose=0, callbacks=[FailsAtTrainEnd()])
    assert model.history.epoch == [0, 1] and model.optimizer.iterations == 2 * 3


def test_history_records_an_epoch_whose_callback_raised():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    class Fails(fn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["seen"] = epoch
            if epoch == 1:
                raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        model.fit(X, y, epochs=5, batch_size=40, callbacks=[Fails()], verbose=0)
    assert model.history.epoch == [0, 1]
    assert model.history.history["seen"] == [0, 1] and len(model.history.history["loss"]) == 2
    assert model.optimizer.iterations == 2 * 3  # two epochs of 3 batches, as History says


# ----------------------------------------------------------------- verbosity
def test_verbose_modes(capsys):
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    model.fit(X, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "accuracy" in lines[0]
    model.fit(X, y, epochs=2, verbose=1)
    err = capsys.readouterr().err  # tqdm writes the bar to stderr
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "batch" in err


def test_verbose_takes_keras_bools_and_auto(capsys):
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert model.fit(X, y, verbose=False).params["verbose"] == 0
    assert capsys.readouterr().err == ""
    for verbose in (True, "auto", np.int64(1)):
        assert model.fit(X, y, verbose=verbose).params["verbose"] == 1
        assert "Epoch 1/1" in capsys.readouterr().err
    for bad in (3, "loud", 1.5):
        with pytest.raises(ValueError, match=f"verbose: expected 0, 1, 2, True, False or 'auto', got {bad!r}"):
            model.fit(X, y, verbose=bad)


def test_validation_split_takes_numpy_numbers():
    X, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(X, y, validation_split=np.float32(0.25), verbose=0)
    assert history.params["samples"] == 90 and "val_loss" in history.history
    with pytest.raises(ValueError, match="validation_split: expected a float in"):
        model.fit(X, y, validation_split=np.bool_(True), verbose=0)


@pytest.mark.parametrize("hook", ["on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"])
def test_every_keras_batch_hook_is_called(hook):
    X, y = blobs()
    calls = []

    class Hook(fn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            calls.append(("params", dict(self.params)))

    setattr(Hook, hook, lambda self, batch, logs=None: calls.append((hook, batch, logs["size"])))
    model = small_model(backend=fn.backends.available()[0])  # a backend with the compiled path
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, batch_size=50, callbacks=[Hook()], verbose=0)
    params = calls.pop(0)[1]
    assert {k: params[k] for k in ("epochs", "steps", "verbose")} == {"epochs": 2, "steps": 3, "verbose": 0}
    assert calls == [(hook, b, size) for _ in range(2) for b, size in ((0, 50), (1, 50), (2, 20))]


def test_train_batch_hooks_call_their_aliases_and_can_stop_training():
    X, y = blobs()
    seen = []

    class Alias(fn.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch))
            super().on_train_batch_end(batch, logs)
            if batch == 1:
                self.model.stop_training = True

        def on_batch_end(self, batch, logs=None):
            seen.append(("alias end", batch))

    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=3, batch_size=50, callbacks=[Alias()], verbose=0)
    assert seen == [("begin", 0), ("end", 0), ("alias end", 0), ("begin", 1), ("end", 1), ("alias end", 1)]
    assert model.optimizer.iterations == 2


# ------------------------------------------------------- optimizers, schedules
def test_optimizer_single_steps_match_their_formulas():
    g = np.array([0.5, -1.0])
    cases = {
        "sgd": (fn.optimizers.SGD(0.1), [1 - 0.05, 2 + 0.1]),
        "momentum": (fn.optimizers.SGD(0.1, momentum=0.9), [1 - 0.05, 2 + 0.1]),
        "nesterov": (fn.optimizers.SGD(0.1, momentum=0.9, nesterov=True), [1 - 0.05 * 1.9, 2 + 0.1 * 1.9]),
        "adagrad": (fn.optimizers.Adagrad(0.1, initial_accumulator_value=0.0, epsilon=1e-12), [0.9, 2.1]),
        "rmsprop": (fn.optimizers.RMSprop(0.1, rho=0.9, epsilon=1e-12),
                    [1 - 0.1 / math.sqrt(0.1), 2 + 0.1 / math.sqrt(0.1)]),
        "adam": (fn.optimizers.Adam(0.1, epsilon=1e-12), [0.9, 2.1]),
    }
    for backend in fn.backends.available():
        kernels = fn.backends.resolve(backend)
        for name, (opt, expected) in cases.items():
            p = np.array([1.0, 2.0])
            opt.iterations = 0
            opt.build([p])
            opt.apply(kernels, [p], [g])
            np.testing.assert_allclose(p, expected, rtol=1e-9, err_msg=f"{backend} {name}")


def test_schedules_follow_their_formulas():
    s = fn.schedules
    assert s.get(0.1)(1000) == 0.1
    assert s.StepDecay(1.0, factor=0.5, decay_steps=10)(25) == 0.25
    assert s.ExponentialDecay(1.0, decay_rate=0.5)(3) == pytest.approx(0.125)
    assert s.PolynomialDecay(1.0, alpha=0.5, power=2)(2) == pytest.approx(0.25)
    cos = s.CosineDecay(1.0, decay_steps=100, final_learning_rate=0.1)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1) == cos(500)
    warm = s.Warmup(s.ExponentialDecay(1.0, 0.5), warmup_steps=4)
    assert [warm(t) for t in range(6)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 0.5])
    opt = fn.optimizers.SGD(s.ExponentialDecay(1.0, 0.5))
    opt.build([np.zeros(1)])
    p = np.zeros(1)
    for _ in range(3):
        opt.apply(fn.backends.resolve("numpy"), [p], [np.ones(1)])
    assert p[0] == pytest.approx(-(1 + 0.5 + 0.25))


@pytest.mark.parametrize("make, name", [
    (lambda s: s.Warmup(initial_learning_rate=-1.0), "initial_learning_rate"),
    (lambda s: s.Warmup(initial_learning_rate=math.inf), "initial_learning_rate"),
    (lambda s: s.Warmup(initial_learning_rate="0.1"), "initial_learning_rate"),
    (lambda s: s.StepDecay(factor=math.inf), "factor"),
    (lambda s: s.ExponentialDecay(decay_rate=math.nan), "decay_rate"),
    (lambda s: s.PolynomialDecay(power=math.inf), "power"),
    (lambda s: s.Constant(math.inf), "initial_learning_rate"),
    (lambda s: s.CosineDecay(decay_steps=math.inf), "decay_steps"),
    (lambda s: s.CosineDecay(final_learning_rate="0"), "final_learning_rate"),
])
def test_schedules_reject_infinite_and_out_of_range_parameters(make, name):
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        make(fn.schedules)


def test_schedule_rates_beyond_float_range_are_inf_or_zero():
    s = fn.schedules
    assert s.StepDecay(1.0, factor=1e300, decay_steps=1)(5) == math.inf
    assert s.ExponentialDecay(1.0, decay_rate=1e300)(5) == math.inf
    assert s.ExponentialDecay(1.0, decay_rate=1e-300)(5) == 0.0
    assert s.PolynomialDecay(1.0, alpha=1e300, power=1e300)(1) == 0.0
    assert s.Warmup(s.StepDecay(1.0, factor=1e300, decay_steps=1), warmup_steps=2)(7) == math.inf
    # fit treats an infinite rate as a diverging loss: it stops, warns and keeps finite weights
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.standard_normal((64, 1))
    model = fn.Sequential([fn.Dense(4, input_dim=4), fn.Dense(1)], backend="numpy", seed=0)
    model.compile(fn.optimizers.SGD(s.StepDecay(0.01, factor=1e300, decay_steps=1)), "mse")
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="fit: the loss became"):
        model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_compile_starts_the_optimizer_afresh_for_the_model_that_compiled_it_last():
    X, y = blobs()
    opt = fn.optimizers.Adam(fn.schedules.ExponentialDecay(1e-3, 0.5))
    model = small_model()
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, verbose=0)
    assert opt.iterations > 0
    model.compile(model.optimizer, "sparse_categorical_crossentropy")  # recompile: a fresh start
    assert opt.iterations == 0 and opt.current_learning_rate() == 1e-3
    assert all(not st.any() for st in opt.get_state())
    fresh = small_model()
    fresh.compile(fn.optimizers.Adam(fn.schedules.ExponentialDecay(1e-3, 0.5)), "sparse_categorical_crossentropy")
    h1, h2 = model.fit(X, y, verbose=0), fresh.fit(X, y, verbose=0)
    assert h1.history["lr"] == h2.history["lr"]
    other = fn.Sequential([fn.Dense(5, "relu", input_dim=4), fn.Dense(3, "softmax")])
    other.compile(opt, "sparse_categorical_crossentropy")  # different shapes: fresh state, from step 0
    assert opt.iterations == 0 and [st.shape for st in opt.get_state()][:2] == [(4, 5), (4, 5)]
    other.fit(X, y, verbose=0)
    assert opt.iterations == 4
    assert not model.compiled
    for call in (lambda: model.fit(X, y, verbose=0), lambda: model.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"the optimizer Adam\(.*\) was compiled into another model since"):
            call()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, verbose=0)
    import copy, pickle
    assert pickle.loads(pickle.dumps(opt)).iterations == 4
    assert copy.deepcopy(opt).iterations == 4


def test_a_python_function_is_a_learning_rate():
    opt = fn.optimizers.SGD(lambda step: 0.1 / (1 + step))
    model = fn.Sequential([fn.Dense(1, input_dim=2)], backend="numpy", seed=0)
    model.compile(opt, "mse")
    history = model.fit(np.ones((8, 2)), np.ones(8), batch_size=4, epochs=3, verbose=0)
    assert history.history["lr"] == pytest.approx([0.1 / 3, 0.1 / 5, 0.1 / 7])  # the rate of the next update
    with pytest.warns(UserWarning, match="its current value 0.0142857 is stored as a constant"):
        config = opt.get_config()
    assert config["learning_rate"] == pytest.approx(0.1 / 7)
    with pytest.raises(ValueError, match=r"learning_rate: the function gave -1 for step 0"):
        fn.optimizers.SGD(lambda step: -1).current_learning_rate()


def test_stopping_criteria_record_their_measure_in_history():
    X, y = np.random.default_rng(0).standard_normal((16, 2)), np.ones(16)
    model = fn.Sequential([fn.Dense(1, input_dim=2)], backend="numpy", seed=0)
    model.compile(fn.optimizers.SGD(0.01), "mse")
    history = model.fit(X, y, batch_size=16, epochs=3, verbose=0,
                        callbacks=[fn.callbacks.WeightChangeStopping(tol=1e-12),
                                   fn.callbacks.GradientNormStopping(tol=1e-12)])
    assert len(history.history["weight_change"]) == len(history.history["grad_norm"]) == 3
    assert all(v > 0 for v in history.history["weight_change"] + history.history["grad_norm"])


# ------------------------------------------------ a call that raises changes nothing
def test_a_fit_that_raises_leaves_the_model_as_it_was():
    """Every argument is checked before ``fit`` builds the model or adapts its target
    normalizer: a later, correct fit is the fit of a fresh model."""
    rng = np.random.default_rng(0)
    X = rng.random((50, 3))
    y = X.sum(axis=1)

    def regressor():
        m = fn.Sequential([fn.Dense(1)], backend="numpy", seed=0, target_normalization=True)
        m.compile("adam", "mse")
        return m

    model = regressor()
    bad_calls = [dict(batch_size=0), dict(callbacks=[print]), dict(epochs=-1), dict(shuffle="yes"),
                 dict(validation_split=2.0), dict(sample_weight=-np.ones(50))]
    for bad in bad_calls:
        with pytest.raises((ValueError, TypeError)):
            model.fit(X, y * 1000 + 5000, verbose=0, **bad)
        assert not model.built and not model.target_normalizer.adapted, bad
    with pytest.raises(ValueError, match="y: expected 50 targets"):
        model.fit(np.ones((50, 5)), np.ones(7 * 7), verbose=0)
    assert not model.built  # not built for the 5 features of a call that failed on y
    history = model.fit(X, y, epochs=2, verbose=0)
    fresh = regressor()
    assert history.history == fresh.fit(X, y, epochs=2, verbose=0).history
    np.testing.assert_array_equal(model.target_normalizer.mean, fresh.target_normalizer.mean)


def test_set_weights_that_do_not_fit_leave_an_unbuilt_model_unbuilt():
    model = fn.Sequential([fn.Dense(4), fn.Dense(1)])
    with pytest.raises(ValueError, match=r"weights: expected 4 arrays \(\[\(3, 4\), \(4,\), \(4, 1\), \(1,\)\]\), got 1"):
        model.set_weights([np.ones((3, 4))])
    assert not model.built
    with pytest.raises(ValueError, match=r"weights\[2\]: expected shape \(4, 1\), got \(4, 2\)"):
        model.set_weights([np.ones((3, 4)), np.zeros(4), np.ones((4, 2)), np.zeros(1)])
    assert not model.built
    with pytest.raises(ValueError, match="weights\\[1\\]: .*finite"):
        model.set_weights([np.ones((3, 4)), np.full(4, np.nan), np.ones((4, 1)), np.zeros(1)])
    assert not model.built
    model.set_weights([np.ones((3, 4)), np.zeros(4), np.ones((4, 1)), np.zeros(1)])
    assert model.built and model.input_dim == 3
    np.testing.assert_array_equal(model.get_weights()[0], np.ones((3, 4), np.float32))


@pytest.mark.parametrize("n,split,train", [(100, 0.29, 71), (100, 0.57, 43), (100, 0.58, 42), (10, 0.25, 7),
                                           (7, 0.5, 3)])
def test_validation_split_keeps_floor_of_the_rest_for_training_as_keras(n, split, train):
    """Keras trains on the first ``floor(n * (1 - validation_split))`` rows; ``floor(n * split)``
    held out one row too few where ``n * split`` falls just below a whole number."""
    X = np.random.default_rng(0).random((n, 2))
    model = fn.Sequential([fn.Dense(1, input_dim=2)], backend="numpy", seed=0)
    model.compile("sgd", "mse")
    history = model.fit(X, X.sum(axis=1), validation_split=split, verbose=0)
    assert history.params["samples"] == train == math.floor(n * (1 - split))


def test_one_callback_needs_no_list_and_on_train_end_gets_the_last_epochs_logs():
    seen = []

    class Last(fn.callbacks.Callback):
        def on_train_end(self, logs=None):
            seen.append(logs)

    X, y = blobs()
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, verbose=0, callbacks=Last(), validation_split=0.25)
    assert seen == [{k: v[-1] for k, v in history.history.items()}]
    assert set(seen[0]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    model.fit(X, y, epochs=0, verbose=0, callbacks=(Last(),))
    assert seen[-1] is None  # no epoch ran


def test_dtype_none_is_the_default_float32():
    assert fn.Sequential([fn.Dense(1)], dtype=None).dtype == "float32"


@pytest.mark.parametrize("backend", fn.backends.available())
def test_large_sample_weights_train_as_their_scale_free_mean(backend):
    """The loss is sum(w loss) / sum(w): weights of 1e36 in float32 train as weights of 1
    (the NumPy reference added the products in float32 and overflowed)."""
    X, y = blobs(256)
    losses = []
    for scale in (1.0, 1e36):
        model = small_model(backend)
        model.compile("adam", "sparse_categorical_crossentropy")
        history = model.fit(X, y, epochs=2, batch_size=64, verbose=0, sample_weight=np.full(256, scale))
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_metric_names_survive_save_and_load(tmp_path):
    """The logs' keys after loading are the names compile was given ("acc" stays "acc",
    "mean_absolute_error" stays itself), so callbacks that monitor them keep working."""
    X, y = blobs()
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc", "accuracy"])
    model.fit(X, y, epochs=1, verbose=0)
    regressor = fn.Sequential([fn.Dense(1, input_dim=4)], backend="numpy", seed=0)
    regressor.compile("sgd", "mse", metrics=["mean_absolute_error", fn.metrics.MeanSquaredError()])
    regressor.fit(X, y.astype(float), epochs=1, verbose=0)
    for m, data in ((model, (X, y)), (regressor, (X, y.astype(float)))):
        m.save(tmp_path / "m.fastnn")
        loaded = fn.load_model(tmp_path / "m.fastnn")
        assert list(loaded.evaluate(*data, verbose=0)) == list(m.evaluate(*data, verbose=0))
        history = loaded.fit(*data, epochs=1, verbose=0)
        assert list(history.history) == list(m.fit(*data, epochs=1, verbose=0).history)


def test_a_function_behind_warmup_saves_as_its_current_rate(tmp_path):
    """A Python function schedule is saved as the rate it gives now, with a warning, also
    inside a Warmup (which raised a KeyError)."""
    X, y = blobs()
    model = small_model()
    model.compile(fn.optimizers.SGD(learning_rate=fn.schedules.Warmup(lambda step: 0.01, warmup_steps=8)),
                  "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=1, batch_size=40, verbose=0)  # 3 of the 8 warmup steps
    with pytest.warns(UserWarning, match="current value 0.00375 is stored as a constant rate"):
        model.save(tmp_path / "w.fastnn")
    assert fn.load_model(tmp_path / "w.fastnn").optimizer.learning_rate == pytest.approx(0.00375)


def test_each_fit_of_a_seeded_model_shuffles_anew_and_repeats_across_models():
    """fit(epochs=1) in a loop draws a new order each call (it repeated the first epoch's
    order); the same calls on another model of the same seed give the same training, and a
    new compile starts the orders afresh, as it starts the optimizer."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3))
    y = X @ [1.0, -2.0, 0.5]

    def model():
        m = fn.Sequential([fn.Dense(1, input_dim=3)], backend="numpy", seed=4)
        m.compile(fn.optimizers.SGD(0.05), "mse")  # no state: only the order differs
        return m

    a, b = model(), model()
    start = a.get_weights()
    first = []
    for _ in range(3):  # the same weights and optimizer before every call
        a.set_weights(start)
        a.fit(X, y, epochs=1, batch_size=1, verbose=0)
        first.append(a.get_weights()[0])
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    for expected in first:
        b.set_weights(start)
        b.fit(X, y, epochs=1, batch_size=1, verbose=0)
        np.testing.assert_array_equal(b.get_weights()[0], expected)
    a.compile(fn.optimizers.SGD(0.05), "mse")
    a.set_weights(start)
    a.fit(X, y, epochs=1, batch_size=1, verbose=0)
    np.testing.assert_array_equal(a.get_weights()[0], first[0])


def test_batch_logs_hold_the_epochs_running_loss_and_metrics():
    """As Keras: on_train_batch_end's loss and metrics are the means over the epoch so far,
    so the last batch's equal the epoch's logs."""
    batches = []

    class Batches(fn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(dict(logs))

    X, y = blobs()
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=1, batch_size=50, verbose=0, callbacks=[Batches()], shuffle=False)
    assert [b["size"] for b in batches] == [50, 50, 20]
    assert batches[-1]["loss"] == pytest.approx(history.history["loss"][0])
    assert batches[-1]["accuracy"] == pytest.approx(history.history["accuracy"][0])
    again = small_model()
    again.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    first = again.fit(X[:50], y[:50], epochs=1, batch_size=50, verbose=0, shuffle=False)
    assert batches[0]["loss"] == pytest.approx(first.history["loss"][0])


@pytest.mark.parametrize("backend", fn.backends.available())
def test_a_deep_copy_or_pickle_of_a_trained_model_is_a_model_of_its_own(backend):
    """copy.deepcopy and pickle (as for a PyTorch module or a scikit-learn estimator): the
    copy predicts alike, trains on from the same optimizer state, and training it leaves
    the original alone; its layers are its own."""
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=5), fn.Dense(3, activation="softmax")],
                          backend=backend, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone.backend == model.backend and clone.history.model is clone
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
        clone.fit(X, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
        twin = copy.deepcopy(model)
        twin.fit(X, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
        for a, b in zip(clone.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match="belongs"):  # each model's layers are its own
            fn.Sequential([clone.layers[0]])
        with pytest.raises(ValueError, match="belongs"):
            fn.Sequential([model.layers[0]])
    shallow = copy.copy(model)  # shares the model's layers and optimizer, which stay the model's
    assert shallow.layers[0] is model.layers[0] and model._owns_optimizer()


def test_a_pickled_model_loads_on_auto_where_its_backend_is_not_built(monkeypatch):
    import pickle

    from fastnn import _kernels

    model = fn.Sequential([fn.Dense(2, activation="softmax", input_dim=3)], backend="numpy", seed=0)
    data = pickle.dumps(model)
    real = _kernels.resolve

    def resolve(name):
        if name == "numpy":
            raise ImportError("fastnn backend 'numpy' is not available: (test)")
        return real(name)

    monkeypatch.setattr(_kernels, "resolve", resolve)
    loaded = pickle.loads(data)
    assert loaded.backend == real("auto").NAME and loaded._kernels is real("auto")
    np.testing.assert_allclose(loaded.predict(np.ones((2, 3), np.float32)),
                               model.predict(np.ones((2, 3), np.float32)), rtol=1e-6)
