"""Logic gates from single sigmoid neurons, XNOR from three of them, then XNOR learned.

A sigmoid neuron with large weights is a logic gate: sigmoid(-30 + 20 x1 + 20 x2)
is close to 1 only when both inputs are 1 (AND).  XNOR is not linearly separable,
so no single neuron computes it, but two layers do:

    XNOR(x1, x2) = OR(AND(x1, x2), (NOT x1) AND (NOT x2))

We set those weights by hand with ``set_weights``, print the truth tables, then
let gradient descent find XNOR on its own from the four examples.

    python examples/xnor_logic_gates.py [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XNOR = np.array([1, 0, 0, 1])

# Hand-set gates: (weights for x1, x2), bias.
GATES = {
    "AND": ([20.0, 20.0], -30.0),
    "OR": ([20.0, 20.0], -10.0),
    "NOT x1 AND NOT x2": ([-20.0, -20.0], 10.0),
}


def neuron(weights, bias, seed=None):
    """A one-neuron sigmoid 'network' with the given weights."""
    model = fn.Sequential([fn.Dense(1, activation="sigmoid", input_dim=len(weights))], seed=seed)
    model.set_weights([np.array(weights).reshape(-1, 1), np.array([bias])])
    return model


def truth_table(name, model, inputs):
    out = model.predict(inputs)[:, 0]
    print(f"{name}")
    for row, value in zip(inputs, out):
        print(f"  {' '.join(str(int(v)) for v in row)} -> {value:.4f} ~ {int(value > 0.5)}")
    return (out > 0.5).astype(int)


def hand_built_xnor():
    """Hidden layer: [AND, NOT-x1-AND-NOT-x2]; output: OR of the two."""
    model = fn.Sequential([
        fn.Dense(2, activation="sigmoid", input_dim=2),
        fn.Dense(1, activation="sigmoid"),
    ])
    (and_w, and_b), (nor_w, nor_b), (or_w, or_b) = GATES["AND"], GATES["NOT x1 AND NOT x2"], GATES["OR"]
    model.set_weights([
        np.column_stack([and_w, nor_w]),  # (n_in, n_out): one column per hidden neuron
        np.array([and_b, nor_b]),
        np.array(or_w).reshape(2, 1),
        np.array([or_b]),
    ])
    return model


def learned_xnor(hidden, activation, seed, epochs, learning_rate):
    model = fn.Sequential([
        fn.Dense(hidden, activation=activation, input_dim=2),
        fn.Dense(1, activation="sigmoid"),
    ], seed=seed)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(INPUTS, XNOR, epochs=epochs, batch_size=4, verbose=0)
    return model


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer random restarts of the 2-2-1 network")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    args = parser.parse_args(argv)
    outcome = {"gates": {}, "plots": []}

    print("== Single neurons as logic gates ==")
    for name, (weights, bias) in GATES.items():
        outcome["gates"][name] = truth_table(f"{name} = sigmoid({bias:g} {weights[0]:+g} x1 {weights[1]:+g} x2)",
                                             neuron(weights, bias), INPUTS).tolist()
    outcome["gates"]["NOT"] = truth_table("NOT x = sigmoid(10 - 20 x)", neuron([-20.0], 10.0),
                                          np.array([[0.0], [1.0]])).tolist()
    check(outcome["gates"]["AND"] == [0, 0, 0, 1], f"AND gives {outcome['gates']['AND']}")
    check(outcome["gates"]["OR"] == [0, 1, 1, 1], f"OR gives {outcome['gates']['OR']}")
    check(outcome["gates"]["NOT x1 AND NOT x2"] == [1, 0, 0, 0], "NOT x1 AND NOT x2 is wrong")
    check(outcome["gates"]["NOT"] == [1, 0], f"NOT gives {outcome['gates']['NOT']}")

    print("\n== XNOR = OR(AND, NOT x1 AND NOT x2), weights set by hand ==")
    hand = hand_built_xnor()
    outcome["hand_xnor"] = truth_table("XNOR (2-2-1, hand-set)", hand, INPUTS).tolist()
    check(outcome["hand_xnor"] == XNOR.tolist(), f"hand-built XNOR gives {outcome['hand_xnor']}")

    print("\n== XNOR learned from the four examples ==")
    # Two hidden neurons are enough (see above), but gradient descent often
    # stalls in a local minimum from a random start: count the lucky starts.
    seeds = range(5 if args.quick else 20)
    solved = [seed for seed in seeds
              if np.array_equal(learned_xnor(2, "sigmoid", seed, 1000, 0.1).predict(INPUTS)[:, 0] > 0.5, XNOR == 1)]
    print(f"2-2-1 sigmoid, Adam, 1000 epochs: solved XNOR from {len(solved)} of {len(seeds)} random starts")
    outcome["solved_2_2_1"] = f"{len(solved)}/{len(seeds)}"

    # Wider hidden layers make the landscape friendlier.
    model = learned_xnor(4, "tanh", seed=0, epochs=500, learning_rate=0.1)
    learned = truth_table("XNOR (2-4-1 tanh, learned)", model, INPUTS)
    outcome["learned_xnor"] = learned.tolist()
    check(learned.tolist() == XNOR.tolist(), f"the 2-4-1 network learned {learned.tolist()}, not XNOR {XNOR.tolist()}")
    W1, b1 = model.get_weights()[:2]
    print(f"learned hidden weights (columns = neurons):\n{np.round(W1, 2)}\nbiases {np.round(b1, 2)}")

    try:
        path = os.path.join(args.out, "xnor_decision_regions.png")
        plot.plot_decision_boundary({"hand-set 2-2-1": hand, "learned 2-4-1": model}, INPUTS, XNOR,
                                    path=path, feature_names=("x1", "x2"), title="XNOR")
        outcome["plots"].append(path)
        print(f"\nsaved {path}")
    except ImportError as exc:
        print(f"\n(no plots: {exc})")
    print("\nOK: every gate and XNOR give the right truth table.")
    return outcome


if __name__ == "__main__":
    main()
