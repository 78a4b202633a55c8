"""The ``fastnn`` command line: ``train``, ``evaluate``, ``predict`` and ``bench``.

    fastnn train                                  # digits (bundled), works offline
    fastnn train --dataset fashion-mnist --hidden 128 --epochs 5 --save m.fastnn
    fastnn evaluate m.fastnn --dataset fashion-mnist
    fastnn predict m.fastnn --input rows.npy --output predictions.npy
    fastnn bench --quick                          # benchmark the backends (source checkout)

Bad arguments end with an argparse-style usage error (exit status 2), never
a traceback; so do errors found later (a data set, model or file that cannot
be read or written, a model too large for memory): one line on stderr, exit
status 1.  Any other exception is a bug in fastnn and keeps its traceback.
When the reader of the output goes away (``fastnn predict ... | head``) the
command stops quietly with exit status 141 (128 + SIGPIPE, what a
command killed by SIGPIPE returns, e.g. ``seq`` in the same pipeline).  ``bench`` runs the benchmark harness of fastnn's source
checkout (``benchmarks/``, not installed with the package) and takes its
options: ``fastnn bench --help`` lists them there.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist", "fashion-mnist", "wine", "boston")
REGRESSION = {"boston"}
STANDARDIZED = {"wine", "boston"}  # inputs on very different scales


def plural(count, noun):
    """``"1 epoch"``, ``"2 epochs"``: every count the command line prints goes through here."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _hidden(text):
    try:  # every part a number: "" or "128,,64" is a typo, not a model without hidden layers
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers like 128,64, got {text!r}")
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers like 128,64, got {text!r}")
    return sizes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}")
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return value


def load_dataset(name, data_dir=None, seed=0):
    """``(X_train, y_train), (X_test, y_test)`` for a CLI data set name.

    Inputs are float32 in their original units; classification labels
    int64; regression targets ``(n, 1)``.
    """
    from sklearn.model_selection import train_test_split

    from . import datasets

    if name in ("mnist", "fashion-mnist"):
        loader = datasets.load_mnist if name == "mnist" else datasets.load_fashion_mnist
        (X_train, y_train), (X_test, y_test) = loader(data_dir)
        return ((datasets.to_float(X_train), y_train.astype(np.int64)),
                (datasets.to_float(X_test), y_test.astype(np.int64)))
    if name == "digits":
        X, y = datasets.load_digits()
    elif name == "wine":
        X, y = datasets.load_wine()
    else:
        if data_dir is not None and os.path.isdir(os.path.join(data_dir, "boston")):
            data_dir = os.path.join(data_dir, "boston")
        X, y = datasets.load_boston(data_dir)
    stratify = None if name in REGRESSION else y
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=stratify)
    return (X_train.astype(np.float32), y_train), (X_test.astype(np.float32), y_test)


def build_parser():
    import fastnn

    from . import activations, backends, optimizers

    parser = argparse.ArgumentParser(prog="fastnn", description="Train multilayer perceptrons fast on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an MLP on a data set and report test metrics")
    train.add_argument("--dataset", choices=DATASETS, default="digits",
                       help="data set (default: digits, bundled with scikit-learn, works offline)")
    train.add_argument("--data-dir", metavar="PATH",
                       help="folder holding the data set's files, or boston's CSV file "
                            "(default: look in $FASTNN_DATA, then the cache)")
    train.add_argument("--hidden", type=_hidden, default=[128], help="hidden layer sizes, e.g. 128,64 (default: 128)")
    train.add_argument("--activation", default="relu", choices=[n for n in activations.registry.names() if n != "softmax"],
                       help="hidden activation (default: relu)")
    train.add_argument("--optimizer", default="adam", choices=optimizers.registry.names(),
                       help="optimizer (default: adam)")
    train.add_argument("--lr", type=_positive_float, help="learning rate (default: the optimizer's)")
    train.add_argument("--epochs", type=_positive_int, default=20, help="epochs (default: 20)")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default: 32)")
    train.add_argument("--validation-split", type=_fraction, default=0.1, help="held-out fraction (default: 0.1)")
    train.add_argument("--backend", default="auto", choices=["auto"] + backends.names(),
                       help="kernel backend (default: auto, the fastest available)")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    train.add_argument("--save", metavar="PATH", help="save the trained model to PATH (.fastnn)")
    train.add_argument("--plot", metavar="PNG", help="save learning curves to PNG (or .svg, .pdf, ...: "
                                                      "any format matplotlib writes; needs matplotlib)")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                       help="0 silent, 1 progress bar (default), 2 one line per epoch")

    evaluate = sub.add_parser("evaluate", help="evaluate a saved model on a data set's test split")
    evaluate.add_argument("model", help="a .fastnn file")
    evaluate.add_argument("--dataset", choices=DATASETS, default="digits")
    evaluate.add_argument("--data-dir", metavar="PATH", help="as for train")
    evaluate.add_argument("--seed", type=_seed, default=0, help="seed of the train/test split (default: 0)")

    predict = sub.add_parser("predict", help="predict with a saved model")
    predict.add_argument("model", help="a .fastnn file")
    predict.add_argument("--input", required=True, help="rows to predict: .npy, or .csv/.txt (comma separated)")
    predict.add_argument("--output", help="write predictions to .npy or .csv (default: print)")
    predict.add_argument("--proba", action="store_true",
                         help="output a classifier's probabilities instead of its labels (a softmax output's "
                              "argmax, a sigmoid output above 0.5); a regression model outputs its predictions")

    export = sub.add_parser("export", help="export a saved model to ONNX (needs fastnn[onnx])")
    export.add_argument("model", help="a .fastnn file")
    export.add_argument("output", help="the .onnx file to write")

    # Listed for --help only: main hands the arguments after "bench" to the harness unparsed.
    sub.add_parser("bench", add_help=False,
                   help="benchmark the backends, write benchmarks/RESULTS.md (source checkout, pytest-benchmark)")
    return parser


def _check_outputs(args, parser):
    """Fail before training, not after it, when ``--save`` or ``--plot`` cannot be written."""
    if args.plot:
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            parser.exit(1, 'fastnn: --plot needs matplotlib, which is not installed: '
                           'pip install "fastnn[plot]" (or pip install matplotlib)\n')
        _check_writable("--plot", args.plot, parser)
        formats = FigureCanvasBase.get_supported_filetypes()
        suffix = os.path.splitext(args.plot)[1].lower().lstrip(".")
        if suffix not in formats:
            parser.exit(1, f"fastnn: --plot {args.plot}: expected an image file name ending in "
                           f"{', '.join('.' + f for f in sorted(formats))}, e.g. curves.png\n")
    if args.save:
        _check_writable("--save", args.save, parser)


def _check_writable(option, value, parser):
    """Exit with a message unless ``value`` names a file in an existing, writable folder."""
    path = os.path.abspath(value)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        parser.exit(1, f"fastnn: {option} {value}: is a folder; give a file name, e.g. "
                       f"{os.path.join(value, 'curves.png' if option == '--plot' else 'model.fastnn')}\n")
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        parser.exit(1, f"fastnn: {option} {value}: the folder {folder} {what}\n")
    if not os.access(folder, os.W_OK | os.X_OK):
        parser.exit(1, f"fastnn: {option} {value}: the folder {folder} is not writable\n")


def _scores(model, X, y):
    """``model.evaluate``'s loss and metrics; with ``target_normalization`` computed on
    ``predict`` in the targets' original units (``evaluate`` measures standardized
    targets, as training does).  Returns ``(scores, suffix for the printed line)``."""
    if model.target_normalizer is None:
        return model.evaluate(X, y), ""
    predicted = model.predict(X)
    y = np.asarray(y, dtype=predicted.dtype).reshape(predicted.shape)
    scores = {"loss": model.loss(y, predicted), **{name: metric(y, predicted) for name, metric in model.metrics}}
    return scores, " (original units)"


def _train(args, parser):
    import fastnn as fn

    _check_outputs(args, parser)
    (X_train, y_train), (X_test, y_test) = _load_or_exit(args.dataset, args.data_dir, args.seed, parser)
    regression = args.dataset in REGRESSION
    n_out = 1 if regression else int(max(y_train.max(), y_test.max()) + 1)
    init = "he_normal" if args.activation in ("relu", "leaky_relu", "elu", "gelu", "swish") else "glorot_uniform"
    widths = [X_train.shape[1]] + args.hidden
    layers = [fn.Dense(h, activation=args.activation, kernel_initializer=init, input_dim=n_in)
              for n_in, h in zip(widths, args.hidden)]
    layers.append(fn.Dense(n_out, activation=None if regression else "softmax"))
    if args.dataset in STANDARDIZED:  # the model standardizes raw rows itself (and saves the statistics)
        layers.insert(0, fn.Normalization().adapt(X_train))
    model = fn.Sequential(layers, backend=args.backend, dtype=args.dtype, seed=args.seed,
                          target_normalization=regression)
    optimizer = fn.optimizers.get(args.optimizer)
    if args.lr is not None:
        optimizer.learning_rate = args.lr
    model.compile(optimizer=optimizer, loss="mse" if regression else "sparse_categorical_crossentropy",
                  metrics=["mae"] if regression else ["accuracy"])
    print(f"fastnn {fn.__version__}: {args.dataset} {X_train.shape[0]} train / {plural(X_test.shape[0], 'test row')}, "
          f"{X_train.shape[1]}-{'-'.join(map(str, args.hidden))}-{n_out} {args.activation}, "
          f"{args.optimizer}, batch {args.batch_size}, backend {model.backend}, {args.dtype}")
    start = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=args.validation_split, verbose=args.verbose)
    seconds = time.perf_counter() - start
    epochs_run = len(history.epoch)
    print(f"trained {plural(epochs_run, 'epoch')} in {seconds:.2f} s ({seconds / max(epochs_run, 1):.3f} s/epoch)")
    result, units = _scores(model, X_test, y_test)
    print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()) + units)
    if args.save:
        with _writing("--save", args.save):
            model.save(args.save)
        print(f"saved {args.save}")
    if args.plot:
        from .plot import plot_history

        with _writing("--plot", args.plot):
            plot_history(history, path=args.plot)
        print(f"learning curves written to {args.plot}")
    return 0


# fastnn.datasets speaks Python (``path=``, ``load_boston``); the command line's
# option is --data-dir.  Known phrases first, then any leftover keyword argument.
_API_TO_CLI = (
    ("Or pass path= to the CSV file (any name)", "Or pass --data-dir PATH: the CSV file (any name) or its folder,"),
    ("Or leave path=None to search", "Or leave out --data-dir to search"),
    ("load_boston: no file", "--data-dir: no file"),
)


def cli_wording(message):
    """A ``fastnn.datasets`` error message in the command line's terms."""
    import re

    for api, cli in _API_TO_CLI:
        message = message.replace(api, cli)
    message = re.sub(r"\bpath=None\b", "no --data-dir", message)
    message = re.sub(r"\bpath=", "--data-dir ", message)
    return re.sub(r"\bload_\w+: ", "", message)


def _load_or_exit(name, data_dir, seed, parser):
    try:
        return load_dataset(name, data_dir, seed)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"fastnn: cannot load data set {name!r}: {cli_wording(str(exc))}\n")


def _load_model_or_exit(path, parser):
    import fastnn as fn

    try:
        return fn.load_model(path)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"fastnn: cannot load model {path!r}: {exc}\n")


def _evaluate(args, parser):
    model = _load_model_or_exit(args.model, parser)
    if not model.compiled:
        parser.exit(1, f"fastnn: {args.model} was saved without compile settings; cannot evaluate\n")
    _, (X_test, y_test) = _load_or_exit(args.dataset, args.data_dir, args.seed, parser)
    result, units = _scores(model, X_test, y_test)
    print(", ".join(f"{k} {v:.4f}" for k, v in result.items()) + units)
    return 0


def _read_rows(path, parser):
    try:
        if path.endswith(".npy"):
            return _load_npy(path)
        return np.loadtxt(path, delimiter=",", ndmin=2)
    except USER_ERRORS as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else describe(exc)
        parser.exit(1, f"fastnn: cannot read --input {path!r}: {reason}\n")


def _load_npy(path):
    """A ``.npy`` file's array, memory-mapped first: a header that declares more data
    than the file holds is an error, not an attempt to allocate that much."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "mmap length" not in str(exc):
            return np.load(path, allow_pickle=False)  # numpy's own message (e.g. for pickled objects)
        raise ValueError("the file holds less data than its header declares (truncated or corrupt)") from None
    return np.array(mapped)


def _predict(args, parser):
    model = _load_model_or_exit(args.model, parser)
    X = _read_rows(args.input, parser)
    out = model.predict(X)
    if not args.proba:
        out = _labels(model, out)
    if args.output:
        with _writing("--output", args.output):
            if args.output.endswith(".npy"):
                np.save(args.output, out)
            else:
                np.savetxt(args.output, out, delimiter=",", fmt="%d" if out.dtype.kind == "i" else "%.7g")
        print(f"wrote {plural(len(out), 'prediction')} to {args.output}")
    else:
        np.savetxt(sys.stdout, out.reshape(len(out), -1), delimiter=",",
                   fmt="%d" if out.dtype.kind == "i" else "%.7g")
    return 0


def _labels(model, out):
    """A classifier's labels from its outputs (``predict --proba`` keeps the outputs): the
    argmax of a softmax, ``output > 0.5`` for sigmoid outputs (one column: a 1-D label);
    a regression model's outputs are its predictions."""
    from . import activations

    activation = model.layers[-1].activation
    if isinstance(activation, activations.Softmax):
        return out.argmax(axis=1)
    if isinstance(activation, activations.Sigmoid):
        labels = (out > 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels
    return out


def _export(args, parser):
    model = _load_model_or_exit(args.model, parser)
    try:
        model.export_onnx(args.output)
    except ImportError as exc:
        parser.exit(1, f"fastnn: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"fastnn: cannot write {args.output!r}: {exc}\n")
    print(f"wrote {args.output} (ONNX, input (batch, {model.input_dim}), {model.dtype})")
    return 0


# What a user's data, arguments or machine cause (fastnn's own checks raise ValueError
# or TypeError): one line on stderr and exit status 1.  Other exceptions are bugs.
USER_ERRORS = (ValueError, TypeError, OSError, MemoryError)


def describe(exc):
    """One line for a user error: the message, with the OS's wording for an OSError."""
    if isinstance(exc, MemoryError):
        return f"not enough memory: {exc}" if str(exc) else "not enough memory"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


class CommandError(Exception):
    """A user error with its message in the command line's words."""


@contextlib.contextmanager
def _writing(option, path):
    """Name the option and its file when writing it fails (after training, say)."""
    try:
        yield
    except OSError as exc:
        raise CommandError(f"{option} {path}: cannot write it: {exc.strerror or exc}") from exc


def find_benchmarks() -> Path | None:
    """``benchmarks/`` of fastnn's source checkout, holding the benchmark harness:
    beside this package (an editable install or a checkout on the path), else in the
    current folder; None where neither has it (an installed wheel)."""
    for folder in (Path(__file__).resolve().parents[1] / "benchmarks", Path.cwd() / "benchmarks"):
        if (folder / "harness" / "report.py").is_file():
            return folder.resolve()
    return None


def _bench(argv, parser):
    """Run ``benchmarks/report.py``'s logic with the arguments after ``bench``."""
    benchmarks = find_benchmarks()
    if benchmarks is None:
        parser.exit(1, "fastnn bench: needs a source checkout of fastnn (benchmarks/ is not installed with the "
                       "package); in the checkout run: python benchmarks/report.py --quick\n")
    if str(benchmarks) not in sys.path:
        sys.path.insert(0, str(benchmarks))
    from harness.report import main as report_main

    return report_main(argv, prog="fastnn bench")


def main(argv=None) -> int:
    try:
        status = _run(argv)
        sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        # `fastnn predict ... | head`: the reader closed the pipe. Exit quietly with
        # 141 (128 + SIGPIPE), the status of a command killed by SIGPIPE, as
        # coreutils' commands end in the same pipeline; stdout goes to devnull so
        # the interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # stdout replaced (tests) or already closed
            pass
        return 141


def _run(argv):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the harness in the source checkout parses what follows
        handler, args = _bench, argv[1:]
    else:
        # Errors in a subcommand's arguments come from its own parser, with its usage line.
        args = parser.parse_args(argv)
        handler = {"train": _train, "evaluate": _evaluate, "predict": _predict,
                   "export": _export}[args.command]
    try:
        return handler(args, parser)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # main's quiet exit
    except (CommandError, *USER_ERRORS) as exc:
        if handler is _bench:  # the benchmark harness reports its own errors
            raise
        parser.exit(1, f"fastnn: {describe(exc)}\n")
