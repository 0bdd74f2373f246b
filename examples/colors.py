"""The walk-through: a colour map of 200 random RGB vectors, and its pictures.

Run ``python examples/colors.py --out DIR`` (default ``examples/out``), or ``gpusom demo --out
DIR``; both run :func:`gpusom.demo.run`, which writes ``lattice.png`` (the codebook as colours),
``u_matrix.png``, ``projection.png`` (eight named colours where they land on the map) and
``activations.png`` (how blue lights the map, plain and with exponent 8, with colour bars).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")

from gpusom.demo import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torus", action="store_true")
    args = parser.parse_args()
    run(args.out, seed=args.seed, is_torus=args.torus)
