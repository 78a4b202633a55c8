"""Wine cultivars from their chemistry: a single neuron with and without bias,
two hidden layers, then all three classes with softmax.

Binary part: cultivars 0 and 1, from two features, alcohol and proline.
A neuron without bias computes sigmoid(w1 x1 + w2 x2): its decision line
must pass through the origin.  With standardized inputs the origin is the
centre of the data, so that costs little; with inputs scaled to [0, 1] the
origin is a corner of the data and the neuron cannot separate the classes.
A bias moves the line anywhere.

Three classes: a softmax output with one unit per cultivar, from the same
two features and from all 13.

    python examples/wine_classifier.py [--out DIR]
"""
import argparse
import os
import tempfile

from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import fastnn as fn
from fastnn import plot
from fastnn.datasets import load_wine

FEATURES = ["alcohol", "proline"]


def split_and_scale(X, y, scaler, seed):
    """70/30 stratified split; the scaler is fitted on the training part only."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler.fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def train(layers, data, loss, epochs, seed):
    """Fit with Adam, mini-batches of 16; return (model, test accuracy)."""
    X_train, X_test, y_train, y_test = data
    model = fn.Sequential(layers, seed=seed)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=0.01), loss=loss, metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=16, verbose=0)
    return model, model.evaluate(X_test, y_test)["accuracy"]


def binary_models():
    """Fresh (unbuilt) layer lists for the binary comparisons."""
    return {
        "no bias": [fn.Dense(1, activation="sigmoid", use_bias=False, input_dim=2)],
        "with bias": [fn.Dense(1, activation="sigmoid", input_dim=2)],
        "two hidden layers": [
            fn.Dense(16, activation="relu", input_dim=2),
            fn.Dense(8, activation="relu"),
            fn.Dense(1, activation="sigmoid"),
        ],
    }


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 100 if args.quick else 300
    accuracy, plots = {}, []

    def save(name, make_plot, *plot_args, **plot_kwargs):
        try:
            path = os.path.join(args.out, name)
            make_plot(*plot_args, path=path, **plot_kwargs)
            plots.append(path)
        except ImportError as exc:
            print(f"(no plot {name}: {exc})")

    X, y = load_wine(binary=True, features=FEATURES)
    print(f"== Binary: cultivar 0 vs 1 from {' + '.join(FEATURES)} ({len(X)} wines, 30% held out) ==")
    for scaling, scaler in [("standardized", StandardScaler()), ("scaled to [0, 1]", MinMaxScaler())]:
        data = split_and_scale(X, y, scaler, args.seed)
        models = {}
        for name, layers in binary_models().items():
            if scaling != "standardized" and name == "two hidden layers":
                continue
            models[name], acc = train(layers, data, "binary_crossentropy", epochs, args.seed)
            accuracy[f"binary, {name}, {scaling}"] = acc
            print(f"  {name:<18} inputs {scaling:<17} test accuracy {acc:.3f}")
        tag = "standardized" if scaling == "standardized" else "minmax"
        save(f"wine_binary_{tag}.png", plot.plot_decision_boundary, models, data[0], data[2],
             feature_names=[f"{f} ({scaling})" for f in FEATURES], title=f"Wine, binary, inputs {scaling}")

    print("\n== Three cultivars, softmax output ==")
    for features in (FEATURES, None):
        X3, y3 = load_wine(features=features)
        data = split_and_scale(X3, y3, StandardScaler(), args.seed)
        layers = [fn.Dense(16, activation="relu", input_dim=X3.shape[1]), fn.Dense(3, activation="softmax")]
        model, acc = train(layers, data, "sparse_categorical_crossentropy", epochs, args.seed)
        label = " + ".join(features) if features else "all 13 features"
        accuracy[f"3 classes, {label}"] = acc
        print(f"  {X3.shape[1]}-16-3 from {label:<20} test accuracy {acc:.3f}")
        if features:
            save("wine_3_classes.png", plot.plot_decision_boundary, {"softmax, 3 classes": model},
                 data[0], data[2], feature_names=[f"{f} (standardized)" for f in FEATURES])

    good = ["binary, with bias, standardized", "binary, two hidden layers, standardized",
            "binary, with bias, scaled to [0, 1]", "3 classes, all 13 features"]
    for key in good:
        check(accuracy[key] >= 0.9, f"{key}: test accuracy {accuracy[key]:.3f} < 0.9")
    check(accuracy["3 classes, alcohol + proline"] >= 0.7,
          f"3 classes from two features: test accuracy {accuracy['3 classes, alcohol + proline']:.3f} < 0.7")
    gap = accuracy["binary, with bias, scaled to [0, 1]"] - accuracy["binary, no bias, scaled to [0, 1]"]
    check(gap >= 0.15, f"on [0, 1] inputs the bias should matter, but it gains only {gap:.3f} accuracy")
    for path in plots:
        print(f"saved {path}")
    print("\nOK: with a bias (or standardized inputs) one neuron separates the two cultivars; "
          "softmax separates all three.")
    return {"accuracy": accuracy, "plots": plots}


if __name__ == "__main__":
    main()
