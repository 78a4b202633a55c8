"""Test helper: a ``TrainingPlan`` from bare arrays, for calling ``train_batches`` directly."""
import numpy as np

from fastnn import activations
from fastnn._kernels.plan import OptimizerHyper, TrainingPlan
from fastnn.layers import Dense

# One activation class per kernel code.
ACTIVATION_BY_CODE = {cls.code: cls for cls in (
    activations.Linear, activations.Sigmoid, activations.Tanh, activations.ReLU, activations.LeakyReLU,
    activations.ELU, activations.Softmax, activations.Softplus, activations.GELU, activations.Swish)}


def plan_from_arrays(a):
    """The plan for ``a``, a dict of the arrays ``train_batches`` works on: data ``X``, ``Y``,
    ``SW``, ``perm``, ``batch_size``; per-layer tuples ``Ws``, ``bs``, ``dWs``, ``dbs``,
    ``Zs``, ``As``, ``dZs``, ``S1W``, ``S1b``, ``S2W``, ``S2b``; ``acts``, ``alphas``,
    ``l2s``; buffers ``Xb``, ``Yb``, ``SWb``; ``loss``, ``opt`` and ``hyper`` =
    ``[momentum, rho or beta_1, beta_2, epsilon]``.  The Dense layer objects that the
    NumPy reference step runs are made around the same arrays."""
    layers, workspaces = [], []
    for l, W in enumerate(a["Ws"]):
        layer = Dense(W.shape[1], activation=ACTIVATION_BY_CODE[int(a["acts"][l])](), use_bias=a["bs"][l].size > 0)
        layer.activation.alpha = float(a["alphas"][l])
        layer.input_dim = W.shape[0]
        layer.W, layer.dW, layer.l2 = W, a["dWs"][l], float(a["l2s"][l])
        if layer.use_bias:
            layer.b, layer.db = a["bs"][l], a["dbs"][l]
        ws = object.__new__(Dense.Workspace)
        ws.Z, ws.A, ws.dZ = a["Zs"][l], a["As"][l], a["dZs"][l]
        layers.append(layer)
        workspaces.append(ws)
    h = a["hyper"]
    return TrainingPlan(
        X=a["X"], Y=a["Y"], SW=a["SW"], perm=a["perm"], batch_size=a["batch_size"],
        layers=tuple(layers), workspaces=workspaces, Ws=tuple(a["Ws"]), bs=tuple(a["bs"]),
        dWs=tuple(a["dWs"]), dbs=tuple(a["dbs"]), acts=a["acts"], alphas=a["alphas"], l2s=a["l2s"],
        Zs=tuple(a["Zs"]), As=tuple(a["As"]), dZs=tuple(a["dZs"]), Xb=a["Xb"], Yb=a["Yb"], SWb=a["SWb"],
        loss=a["loss"], optimizer=a["opt"],
        hyper=OptimizerHyper(momentum=h[0], rho=h[1], beta_1=h[1], beta_2=h[2], epsilon=h[3]),
        S1W=tuple(a["S1W"]), S1b=tuple(a["S1b"]), S2W=tuple(a["S2W"]), S2b=tuple(a["S2b"]),
    )


def run_train_batches(module, a):
    """``module.train_batches`` on ``a`` (see ``plan_from_arrays``) from ``a["first_batch"]``
    for ``a["n_batches"]`` batches; adds the totals to ``a["out"]`` and returns the
    number of batches completed."""
    result = module.train_batches(plan_from_arrays(a), a["first_batch"], a["n_batches"], a["lrs"], a["step0"])
    a["out"] += np.array(result.totals)
    assert result.ends_finite
    return result.batches
