"""The benchmark workloads in PyTorch and in JAX: the peers fastnn is timed against.

Each peer trains the same network as fastnn's benchmark (``cases.WORKLOADS``)
on the same rows, from the same initial weights (those of the fastnn model
``Workload.build`` makes with seed 0, so the same initializer family and the
same draws), with the same loss, batch size and optimizer hyper-parameters
(fastnn's defaults from ``fastnn.optimizers``: learning rate, betas or rho,
epsilon; or a given fastnn optimizer's, see ``optimizer_spec``), in
float32, shuffling every epoch as ``fit`` does.  Each is written the fastest
idiomatic way:

- ``TorchRun``: eager PyTorch, the whole data set preloaded as tensors, one
  ``randperm`` per epoch and index slicing per batch (no ``DataLoader``),
  ``model(x)``, ``loss.backward()``, ``opt.step()``; the optimizer's fused
  CPU kernel where PyTorch has one (SGD, Adam), else its ``foreach`` form.
- ``JaxRun``: one ``jax.jit``-compiled function per *epoch*: the permutation,
  then ``jax.lax.scan`` over the batches (gather, forward, ``jax.grad``,
  update), and one more step for a last, smaller batch; the optimizer from
  optax if it is installed, else the few lines of ``_jax_optimizer``.

Both expose ``epoch()`` (one epoch, returning once it is done), ``loss()``
(mean loss on all rows), ``predict(X)``, ``weights()`` (fastnn's layout),
``snapshot()`` and ``reset()``.

Timing (``time_workloads``) follows the harness's protocol for fastnn: a
warm-up (one whole epoch: for JAX it includes compiling), then rounds that
each start from the state the warm-up left, at least
``cases.TRAIN_MIN_ROUNDS`` of them and as many more as fit in
``cases.TRAIN_SECONDS``.  ``versus.py`` runs this module in a fresh process
per peer, so that no peer's thread pools share a process with fastnn's or
the other peer's, and one per fastnn backend (``FastnnRun``), all serving
one epoch at a time (``python -m harness.peers torch --serve ...``, see
``serve``) so that they can take turns; ``python -m harness.peers torch
--workloads ...`` times one runner alone and prints JSON.

Upstream forms that differ from fastnn's by where epsilon sits: PyTorch's and
optax's Adam add epsilon to the bias-corrected ``sqrt(v_hat)``; fastnn (as
Keras) folds the bias correction into the step size.  The work per step is
the same.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np

from . import cases

PEERS = ("torch", "jax")


def optimizer_spec(workload, optimizer=None):
    """``(name, spec)``: the fastnn optimizer whose rule and hyper-parameters a peer uses -- ``optimizer``
    (a name or a ``fastnn.optimizers`` instance), else ``workload.optimizer`` with fastnn's defaults."""
    from fastnn import optimizers

    spec = optimizers.get(workload.optimizer if optimizer is None else optimizer)
    name = {optimizers.SGD: "sgd", optimizers.Adam: "adam", optimizers.RMSprop: "rmsprop"}.get(type(spec))
    if name is None:
        plain = False
    else:
        plain = spec.momentum == 0 if name == "sgd" else not spec.epsilon_inside_sqrt
    if not plain or not isinstance(spec.learning_rate, float):
        raise ValueError(f"optimizer: the peers implement SGD without momentum, Adam and RMSprop with a "
                         f"constant learning rate and epsilon outside the square root, got {spec!r}")
    return name, spec


def _layers(weights):
    """``[(W, b), ...]`` from fastnn's ``get_weights()`` order ``[W1, b1, W2, b2, ...]``; W is (n_in, n_out)."""
    return list(zip(weights[0::2], weights[1::2]))


# ------------------------------------------------------------------ PyTorch
class TorchRun:
    """One workload in eager PyTorch.  ``X`` (n, d) float32, ``y`` (n,) int64 labels or (n, 1) float32."""

    def __init__(self, workload, X, y, weights, threads: int, seed: int = 0, optimizer=None):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        modules = []
        for i, (W, b) in enumerate(_layers(weights)):
            linear = torch.nn.Linear(*W.shape)
            with torch.no_grad():  # torch stores W as (n_out, n_in)
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(b))
            modules.append(linear)
            if i < len(weights) // 2 - 1:
                modules.append({"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid,
                                "tanh": torch.nn.Tanh}[workload.activation]())
        self.model = torch.nn.Sequential(*modules)  # the output layer is linear: the loss applies softmax
        self.loss_fn = torch.nn.MSELoss() if workload.regression else torch.nn.CrossEntropyLoss()
        self.opt = self._optimizer(*optimizer_spec(workload, optimizer))
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.batch_size = workload.batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def _optimizer(self, name, spec):
        torch, params = self.torch, self.model.parameters()
        if name == "sgd":
            return torch.optim.SGD(params, lr=spec.learning_rate, fused=True)
        if name == "adam":
            return torch.optim.Adam(params, lr=spec.learning_rate, betas=(spec.beta_1, spec.beta_2),
                                    eps=spec.epsilon, fused=True)
        # RMSprop has no fused form in PyTorch.
        return torch.optim.RMSprop(params, lr=spec.learning_rate, alpha=spec.rho, eps=spec.epsilon, foreach=True)

    def epoch(self):
        perm = self.torch.randperm(len(self.X), generator=self.generator)
        for start in range(0, len(self.X), self.batch_size):
            idx = perm[start:start + self.batch_size]
            loss = self.loss_fn(self.model(self.X[idx]), self.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def loss(self) -> float:
        with self.torch.no_grad():
            return float(self.loss_fn(self.model(self.X), self.y))

    def predict(self, X) -> np.ndarray:
        """Outputs of the last layer before softmax, (n, n_out) float32."""
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()

    def weights(self) -> list[np.ndarray]:
        """Copies of the parameters in fastnn's order and layout: ``[W1 (n_in, n_out), b1, ...]``."""
        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return [a for m in linears for a in (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())]

    def snapshot(self):
        self._saved = copy.deepcopy((self.model.state_dict(), self.opt.state_dict()))

    def reset(self):
        model_state, opt_state = self._saved
        self.model.load_state_dict(model_state)
        self.opt.load_state_dict(opt_state)


# ---------------------------------------------------------------------- JAX
def _jax_optimizer(name: str, spec):
    """``(init, update)`` as optax's ``GradientTransformation`` for ``optimizer_spec``'s result: optax's
    own if installed, else the same rules written here (in Keras's forms, as fastnn's kernels)."""
    import jax
    import jax.numpy as jnp

    lr = spec.learning_rate
    try:
        import optax
    except ImportError:
        optax = None
    if optax is not None:
        if name == "sgd":
            tx = optax.sgd(lr)
        elif name == "adam":
            tx = optax.adam(lr, b1=spec.beta_1, b2=spec.beta_2, eps=spec.epsilon)
        else:  # epsilon outside the square root, as fastnn and PyTorch
            tx = optax.rmsprop(lr, decay=spec.rho, eps=spec.epsilon, eps_in_sqrt=False)
        return tx.init, tx.update

    tree = jax.tree_util.tree_map
    if name == "sgd":
        return (lambda params: ()), (lambda grads, state, params=None: (tree(lambda g: -lr * g, grads), state))
    if name == "rmsprop":
        rho, eps = spec.rho, spec.epsilon

        def update(grads, ms, params=None):
            ms = tree(lambda s, g: rho * s + (1 - rho) * g * g, ms, grads)
            return tree(lambda g, s: -lr * g / (jnp.sqrt(s) + eps), grads, ms), ms

        return (lambda params: tree(jnp.zeros_like, params)), update
    b1, b2, eps = spec.beta_1, spec.beta_2, spec.epsilon  # Adam

    def init(params):
        return jnp.zeros((), jnp.int32), tree(jnp.zeros_like, params), tree(jnp.zeros_like, params)

    def update(grads, state, params=None):
        t, m, v = state
        t = t + 1
        m = tree(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = tree(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return tree(lambda m, v: -step * m / (jnp.sqrt(v) + eps), m, v), (t, m, v)

    return init, update


class JaxRun:
    """One workload in JAX, a whole epoch per compiled call.  Same arguments as ``TorchRun``
    (threads are set through ``XLA_FLAGS`` before JAX is imported: see ``versus.peer_env``)."""

    def __init__(self, workload, X, y, weights, threads: int | None = None, seed: int = 0, optimizer=None):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[workload.activation]
        init, update = _jax_optimizer(*optimizer_spec(workload, optimizer))
        n, bs = len(X), workload.batch_size
        full = n // bs * bs  # rows in whole batches; the rest make one smaller, last batch

        def forward(params, x):
            for W, b in params[:-1]:
                x = act(x @ W + b)
            W, b = params[-1]
            return x @ W + b

        def loss(params, x, y):
            out = forward(params, x)
            if workload.regression:
                return jnp.mean((out - y) ** 2)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], axis=1))

        def epoch(params, opt_state, X, Y, key):
            def step(carry, idx):
                params, opt_state = carry
                grads = jax.grad(loss)(params, X[idx], Y[idx])
                updates, opt_state = update(grads, opt_state, params)
                return (jax.tree_util.tree_map(jnp.add, params, updates), opt_state), None

            perm = jax.random.permutation(key, n)
            carry, _ = jax.lax.scan(step, (params, opt_state), perm[:full].reshape(-1, bs))
            if full < n:
                carry, _ = step(carry, perm[full:])
            return carry

        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in _layers(weights)]
        self.state = (params, init(params))
        self.X, self.y = jnp.asarray(X), jnp.asarray(y)
        self._epoch = jax.jit(epoch)
        self._loss = jax.jit(loss)
        self._forward = jax.jit(forward)
        self.key = jax.random.PRNGKey(seed)

    def epoch(self):
        self.key, key = self.jax.random.split(self.key)
        self.state = self.jax.block_until_ready(self._epoch(*self.state, self.X, self.y, key))

    def loss(self) -> float:
        return float(self._loss(self.state[0], self.X, self.y))

    def predict(self, X) -> np.ndarray:
        """Outputs of the last layer before softmax, (n, n_out) float32."""
        return np.asarray(self._forward(self.state[0], X))

    def weights(self) -> list[np.ndarray]:
        """Copies of the parameters in fastnn's order and layout: ``[W1 (n_in, n_out), b1, ...]``."""
        return [np.array(a) for layer in self.state[0] for a in layer]

    def snapshot(self):
        self._saved = self.state  # JAX arrays are immutable: keeping the reference is a copy

    def reset(self):
        self.state = self._saved


RUNS = {"torch": TorchRun, "jax": JaxRun}


# ------------------------------------------------------------------- fastnn
class FastnnRun:
    """fastnn's own run of a workload (``cases.TrainingRun`` on ``backend``) behind the peers'
    interface, so that ``versus.py`` can time it in turns with them.  ``last_epoch_seconds`` is
    the epoch as the suite times it (``on_epoch_begin`` to ``on_epoch_end``: without the input
    checks ``fit`` makes once per call)."""

    def __init__(self, backend: str, workload, rows: int):
        self.training = cases.TrainingRun(workload, backend, "float32", rows)
        self.training.warm_up()  # compiles what the backend compiles, before the timed warm-up epoch

    def epoch(self):
        self.training()

    @property
    def last_epoch_seconds(self) -> float:
        return self.training.epoch_seconds[-1]

    def snapshot(self):
        self.training.snapshot()

    def reset(self):
        self.training.reset()


FASTNN_PREFIX = "fastnn-"  # runner names "fastnn-<backend>" for fastnn's backends


# ------------------------------------------------------------------- timing
def workload_data(workload, rows: int):
    """``(X, y)`` of the harness for ``workload``: float32 ``X``; int64 labels, or (n, 1) float32 targets."""
    if workload.regression:
        X, y, _ = cases.regression_rows("float32")
        return X, y.reshape(len(y), -1)
    return cases.image_rows("train", "float32", rows)


def make_run(peer: str, workload, rows: int, threads: int):
    """The ``RUNS[peer]`` of ``workload`` on the harness's data and fastnn's initial weights (seed 0);
    for ``"fastnn-<backend>"``, fastnn's own run on that backend."""
    if peer.startswith(FASTNN_PREFIX):
        return FastnnRun(peer[len(FASTNN_PREFIX):], workload, rows)
    X, y = workload_data(workload, rows)
    weights = workload.build("numpy", "float32", seed=0).get_weights()
    return RUNS[peer](workload, X, y, weights, threads)


def time_run(run, quick: bool) -> dict:
    """Warm-up epoch, then rounds from the warm-up's state: ``{"warm_up": s, "epoch_seconds": [s, ...]}``."""
    start = time.perf_counter()
    run.epoch()
    warm_up = time.perf_counter() - start
    run.snapshot()
    seconds = []
    while len(seconds) < cases.TRAIN_MIN_ROUNDS[quick] or (
            sum(seconds) < cases.TRAIN_SECONDS[quick] and len(seconds) < 50):
        run.reset()
        start = time.perf_counter()
        run.epoch()
        seconds.append(time.perf_counter() - start)
    return {"warm_up": warm_up, "epoch_seconds": seconds}


def _version(peer: str) -> str:
    from importlib import metadata

    return metadata.version("fastnn" if peer.startswith(FASTNN_PREFIX) else peer)


def time_workloads(peer: str, names, rows: int, threads: int, quick: bool) -> dict:
    """Time ``peer`` on each workload of ``names``; a workload that fails gets ``{"error": message}``."""
    from importlib import metadata

    out = {"peer": peer, "version": _version(peer), "threads": threads, "rows": rows, "workloads": {}}
    if any(not cases.WORKLOADS[name].regression for name in names):
        out["data"] = cases.image_source()
    if peer == "jax":
        try:
            out["optax"] = metadata.version("optax")
        except metadata.PackageNotFoundError:
            out["optax"] = None
    for name in names:
        try:
            out["workloads"][name] = time_run(make_run(peer, cases.WORKLOADS[name], rows, threads), quick)
        except Exception as exc:  # noqa: BLE001 - reported in RESULTS.md, the other workloads go on
            out["workloads"][name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return out


def serve(peer: str, rows: int, threads: int, stdin=None, stdout=None) -> None:
    """Time ``peer`` one epoch at a time, as the lines on ``stdin`` ask, for ``versus.py``'s turns.

    First prints ``{"ready": true, "version": ..., ...}``; then answers, one JSON line each:
    ``prepare WORKLOAD`` (build it, time a warm-up epoch, keep its end state: ``{"warm_up": s}``),
    ``epoch WORKLOAD`` (back to that state, time one epoch: ``{"seconds": s}``), ``quit``.  A
    failure answers ``{"error": message}`` and the process goes on."""
    from importlib import metadata

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout

    def say(obj):
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    ready = {"ready": True, "peer": peer, "version": _version(peer), "threads": threads, "rows": rows}
    if peer == "jax":
        try:
            ready["optax"] = metadata.version("optax")
        except metadata.PackageNotFoundError:
            ready["optax"] = None
    say(ready)
    runs = {}
    for line in stdin:
        command, _, name = line.strip().partition(" ")
        if command == "quit" or not command:
            break
        try:
            if command == "prepare":
                run = runs[name] = make_run(peer, cases.WORKLOADS[name], rows, threads)
                start = time.perf_counter()
                run.epoch()
                warm_up = time.perf_counter() - start
                run.snapshot()
                say({"warm_up": warm_up})
            elif command == "epoch":
                run = runs[name]
                run.reset()
                start = time.perf_counter()
                run.epoch()
                say({"seconds": getattr(run, "last_epoch_seconds", time.perf_counter() - start)})
            else:
                say({"error": f"unknown command {command!r}"})
        except Exception as exc:  # noqa: BLE001 - reported by the caller; the other workloads go on
            runs.pop(name, None)
            say({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]})


def main(argv=None) -> int:
    """``python -m harness.peers PEER --workloads a,b --rows N --threads T [--quick]``: JSON on stdout;
    ``--serve``: one epoch at a time as standard input asks (``serve``).  PEER is a peer or
    ``fastnn-<backend>``."""
    import fastnn._kernels as K

    parser = argparse.ArgumentParser(prog="python -m harness.peers", description=main.__doc__)
    parser.add_argument("peer", choices=PEERS + tuple(FASTNN_PREFIX + b for b in K.BACKEND_MODULES))
    parser.add_argument("--workloads", default=",".join(cases.WORKLOADS))
    parser.add_argument("--rows", type=int, default=cases.TRAIN_ROWS)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.peer, args.rows, args.threads)
        return 0
    names = [name for name in args.workloads.split(",") if name]
    unknown = [name for name in names if name not in cases.WORKLOADS]
    if unknown:
        parser.error(f"argument --workloads: expected names among {list(cases.WORKLOADS)}, got {unknown}")
    print(json.dumps(time_workloads(args.peer, names, args.rows, args.threads, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
