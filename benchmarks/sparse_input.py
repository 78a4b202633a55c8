"""Sparse input: epoch times of the sparse first layer against the dense path,
the dense floor and scikit-learn, in one run.

    FASTNN_DATA=/path/to/data python benchmarks/sparse_input.py [--epochs 3] [--backends cython,numba,numpy]
    python benchmarks/sparse_input.py --memory     # also the 1,000,000 x 262,144 peak-memory check (minutes)
    FASTNN_DATA=/path/to/data python benchmarks/sparse_input.py --crossover [--units 32,128,512]

Four parts, each printed as a Markdown table:

* **MNIST sparse** -- 784-128-10 ReLU Adam, batch 128, on the MNIST training
  images (real MNIST from ``$FASTNN_DATA/mnist`` when present, else the digits
  upscaled; 81 % of MNIST's pixels are zero): the fastest epoch with the dense
  first layer and with the sparse one (``fit(first_layer="sparse")``, which
  reads ``X`` as CSR), per backend, the test accuracy of each after
  ``--epochs`` epochs, and the dense floor (the epoch's FLOPs over the float32
  GEMM peak measured in the same run).
* **Sparse text** -- a bag of hashed words (``HashingVectorizer``, 2**18
  features, < 1 % density) of generated two-topic documents: fastnn's
  ``MLPClassifier`` against scikit-learn's on the same CSR matrix, seconds per
  epoch and accuracy.
* **Crossover** (``--crossover``) -- the same network (``--units`` wide) on
  MNIST with non-zero pixels dropped at random down to each of ``--densities``:
  dense against sparse first layer per backend, and the density below which
  the sparse one is faster (``fastnn._first_layer.CROSSOVERS`` holds the
  figures ``first_layer="auto"`` uses, by backend and width).
* **Memory** (``--memory``) -- the peak resident memory of one epoch on a
  1,000,000 x 262,144 CSR matrix of 0.1 % density, in a fresh process.

Only ratios within one run mean anything; the machine's load is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fastnn

import fastnn as fn  # noqa: E402
# benchmarks/, this script's folder, is on sys.path
from harness.cases import dense_flops, gemm_peak_flops  # noqa: E402
from harness.sparse import (  # noqa: E402
    crossover, fastest_epochs, memory_case, mnist_images, nonzero_share, text_case, thin,
)


def mnist_rows(args, peak):
    X, y, Xt, yt, source = mnist_images()
    floor = dense_flops((784, 128, 10), X.shape[0]) / peak  # the harness's count: no input gradient for layer 1
    print(f"\n## MNIST sparse ({source}, {X.shape[0]:,} rows, density {nonzero_share(X):.1%})\n")
    print(f"Dense floor (FLOPs / float32 GEMM peak of {peak / 1e9:.0f} GFLOP/s): {floor * 1e3:.1f} ms per epoch.\n")
    print("| backend | dense X: epoch (ms) | CSR X: epoch (ms) | CSR / dense | CSR / floor | accuracy dense | accuracy CSR |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        # first_layer="sparse": X converted once to CSR, then trained as CSR input is
        runs = fastest_epochs((784, 128, 10), backend, X, y, args.epochs)
        (dense, acc_d), (csr, acc_s) = ((seconds, float(np.mean(model.predict(Xt).argmax(axis=1) == yt)))
                                        for seconds, model in (runs["dense"], runs["sparse"]))
        print(f"| {backend} | {dense * 1e3:.0f} | {csr * 1e3:.0f} | {csr / dense:.2f} | {csr / floor:.2f} "
              f"| {acc_d:.4f} | {acc_s:.4f} |", flush=True)


def crossover_rows(args):
    """Dense against sparse first layer at each density: where the sparse one starts to pay.

    The dense epoch does the same work at every density (the GEMMs do not skip zeros), so
    each sparse epoch is compared with the fastest dense epoch of all densities: on a shared
    machine the fastest of many epochs is the best estimate of an undisturbed one.  The
    crossover is where the line fitted to the sparse epochs (``harness.sparse.crossover``)
    meets it."""
    X, y, _, _, source = mnist_images()
    X, y = X[:args.rows], y[:args.rows]
    densities = sorted(float(d) for d in args.densities.split(","))
    for units in (int(u) for u in args.units.split(",")):
        print(f"\n## Crossover: 784-{units}-10 ReLU, Adam, batch 128 ({source}, {X.shape[0]:,} rows, non-zero "
              f"pixels dropped at random down to each density; fastest of {args.epochs} epochs, "
              f"{fn.get_num_threads()} threads)\n")
        print("| backend | density | dense (ms) | sparse (ms) | sparse / fastest dense |")
        print("|---|---|---|---|---|")
        found = {}
        for backend in args.backends.split(","):
            rows = []
            for density in densities:
                Xd = thin(X, density)
                runs = fastest_epochs((784, units, 10), backend, Xd, y, args.epochs)
                rows.append((nonzero_share(Xd), runs["dense"][0], runs["sparse"][0]))
            dense = min(row[1] for row in rows)
            for share, dense_here, sparse in rows:
                print(f"| {backend} | {share:.2%} | {dense_here * 1e3:.0f} | {sparse * 1e3:.0f} "
                      f"| {sparse / dense:.2f} |", flush=True)
            found[backend] = crossover([row[0] for row in rows], [row[2] for row in rows], dense)
            print(f"| {backend} | fastest dense epoch | {dense * 1e3:.0f} | | |", flush=True)
        print()
        for backend, (density, intercept, slope) in found.items():
            where = "never" if density is None else f"below {density:.2%}"
            print(f"- {backend}: sparse epoch ~ {intercept * 1e3:.0f} ms + {slope * 10:.1f} ms per 1 % density "
                  f"(Theil-Sen line); faster than the fastest dense epoch {where}")


def text_rows(args):
    out = text_case(args.backends.split(","), args.documents, args.epochs)
    n, d = out["shape"]
    print(f"\n## Sparse text ({n:,} documents, {d:,} hashed features, density {out['density']:.3%}; "
          "64 hidden ReLU units, Adam, batch 200)\n")
    print("| estimator | seconds per epoch | test accuracy | scikit-learn / this |")
    print("|---|---|---|---|")
    sk = out["sklearn"]
    print(f"| scikit-learn MLPClassifier | {sk['seconds']:.2f} | {sk['accuracy']:.4f} | 1.00 |")
    for backend, r in out["fastnn"].items():
        if "error" in r:
            print(f"| fastnn MLPClassifier ({backend}) | failed: {r['error']} | | |")
        else:
            print(f"| fastnn MLPClassifier ({backend}) | {r['seconds']:.2f} | {r['accuracy']:.4f} "
                  f"| {sk['seconds'] / r['seconds']:.1f} |", flush=True)


def memory_rows(args):
    print("\n## Memory: one epoch on 1,000,000 x 262,144 CSR, 0.1 % density (a dense float32 copy: 1,049 GB)\n")
    print("| backend | CSR matrix (MB) | resident before fit (MB) | peak during fit (MB) | seconds |")
    print("|---|---|---|---|---|")
    for backend, r in memory_case(args.backends.split(",")).items():
        if "error" in r:
            print(f"| {backend} | failed: {r['error']} | | | |")
        else:
            print(f"| {backend} | {r['csr_bytes'] / 1e6:,.0f} | {r['before'] / 1e6:,.0f} | {r['peak'] / 1e6:,.0f} "
                  f"| {r['seconds']:.0f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backends", default=",".join(fn.backends.available()))
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--memory", action="store_true", help="also the 1,000,000-row peak-memory check")
    parser.add_argument("--parts", default="mnist,text", help="which of mnist,text,crossover to run")
    parser.add_argument("--crossover", action="store_true",
                        help="only the crossover: dense against sparse first layer at several densities")
    parser.add_argument("--densities", default="0.005,0.01,0.02,0.04,0.07,0.1,0.14,0.2",
                        help="crossover: densities to thin MNIST to (a density above MNIST's uses it as it is)")
    parser.add_argument("--units", default="128", help="crossover: first-layer widths, comma-separated")
    parser.add_argument("--rows", type=int, default=60_000, help="crossover: training rows")
    args = parser.parse_args(argv)
    if args.crossover:
        args.parts = "crossover"
    print(f"# Sparse input, {time.strftime('%Y-%m-%d %H:%M')} UTC; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs; fastnn backends {args.backends}")
    parts = args.parts.split(",")
    if "mnist" in parts:
        mnist_rows(args, gemm_peak_flops())
    if "crossover" in parts:
        crossover_rows(args)
    if "text" in parts:
        text_rows(args)
    if args.memory:
        memory_rows(args)


if __name__ == "__main__":
    main()
