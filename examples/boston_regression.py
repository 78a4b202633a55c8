"""Boston house prices: regression with a 13-128-128-64-1 ReLU network.

Inputs and the target (median value, MEDV, in $1000s) are standardized with
statistics of the training part only: a ``Normalization`` layer adapted to the
training inputs comes first in the model, and ``target_normalization=True``
standardizes the target.  The network is trained with RMSprop on the mean
squared error of the standardized target, reporting the mean absolute error
(MAE); 20% of the training part is held out for validation.  ``predict`` maps
the outputs back to dollars ("de-normalizes") before we compare them with the
true prices of the test part, and a saved model does the same from raw rows.

The data set is a CSV file that fastnn does not download (see
``fastnn.datasets.load_boston``): put ``boston_housing.csv`` in the folder
``$FASTNN_DATA`` names (or ``$FASTNN_DATA/boston/``).

    FASTNN_DATA=/path/to/data python examples/boston_regression.py [--quick] [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np
from sklearn.model_selection import train_test_split

import fastnn as fn
from fastnn import plot
from fastnn.datasets import load_boston


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 epochs instead of 200")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--data", default=None, help="the CSV file or its folder (default: search $FASTNN_DATA)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (40 if args.quick else 200)

    try:
        X, y = load_boston(args.data)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"This example needs the Boston housing CSV (--data FILE, or FASTNN_DATA).\n{exc}") from None

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=args.seed)
    n_fit = len(X_train) - int(len(X_train) * 0.2)  # fit's validation_split holds out the last 20%
    normalization = fn.Normalization()
    normalization.adapt(X_train[:n_fit])  # the statistics of the rows we train on, nothing else
    print(f"{len(X_train)} districts to train on (20% of them for validation), {len(X_test)} to test")

    model = fn.Sequential([
        normalization,
        fn.Dense(128, activation="relu", input_dim=13),
        fn.Dense(128, activation="relu"),
        fn.Dense(64, activation="relu"),
        fn.Dense(1),
    ], seed=args.seed, target_normalization=True)
    model.compile(optimizer=fn.optimizers.RMSprop(learning_rate=1e-3), loss="mse", metrics=["mae"])
    model.summary()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=16, validation_split=0.2, verbose=0)
    target = model.target_normalizer  # adapted by fit to the training rows' targets
    print(f"MEDV mean {target.mean[0]:.2f}, std {target.scale[0]:.2f} ($1000s)")
    last = {k: v[-1] for k, v in history.history.items()}
    print(f"after {epochs} epochs (standardized units): loss {last['loss']:.4f}, val_loss {last['val_loss']:.4f}, "
          f"mae {last['mae']:.4f}, val_mae {last['val_mae']:.4f}")

    # predict de-normalizes: back to $1000s (target.inverse_transform of the standardized outputs).
    predicted = model.predict(X_test)
    errors = predicted[:, 0] - y_test[:, 0]
    mae, rmse = float(np.mean(np.abs(errors))), float(np.sqrt(np.mean(errors**2)))
    baseline = float(np.mean(np.abs(y_test[:, 0] - y_train.mean())))
    print(f"test MAE ${mae * 1000:,.0f}, RMSE ${rmse * 1000:,.0f} "
          f"(predicting the mean price for every district: MAE ${baseline * 1000:,.0f})")
    print("first test districts:   true     predicted")
    for true, pred in zip(y_test[:5, 0], predicted[:5, 0]):
        print(f"                      {true:6.1f}k   {pred:6.1f}k")

    plots = []
    try:
        path = os.path.join(args.out, "boston_curves.png")
        plot.plot_history(history, path=path, title="Boston housing, 13-128-128-64-1 (standardized target)")
        plots.append(path)
        print(f"saved {path}")
    except ImportError as exc:
        print(f"(no plot: {exc})")

    limit = 4.0 if args.quick else 3.5
    check(mae < limit, f"test MAE {mae:.2f}k is not below {limit}k")
    check(mae < 0.6 * baseline, f"test MAE {mae:.2f}k is not clearly better than the mean ({baseline:.2f}k)")
    print(f"\nOK: test MAE {mae:.2f}k < {limit}k")
    return {"mae": mae, "rmse": rmse, "baseline_mae": baseline, "epochs": epochs, "val_mae": last["val_mae"],
            "plots": plots}


if __name__ == "__main__":
    main()
