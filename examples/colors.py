"""The walk-through: a colour map of 200 random RGB vectors, and its pictures.

Run ``python examples/colors.py --out DIR`` (default ``examples/out``); it writes
``lattice.png`` (the codebook as colours), ``u_matrix.png``, ``projection.png`` (eight named
colours on the map) and ``activations.png`` (how blue lights the map, plain and with exponent 8).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from gpusom import (
    SOM,
    lattice_activations,
    lattice_closest_vectors,
    plot_u_matrix,
    project_on_lattice,
    quantization_error,
    topographic_error,
    u_matrix,
)

COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 1]],
    dtype=float,
)
COLOR_LABELS = ["red", "green", "blue", "yellow", "cyan", "purple", "black", "white"]


def main(out_dir, seed=0, is_torus=False, iterations=15000):
    os.makedirs(out_dir, exist_ok=True)
    data = np.random.default_rng(seed).random([200, 3])
    som = SOM(som_size=(50, 100), is_torus=is_torus, seed=seed)
    lattice = som.train(data, num_iterations=iterations)
    print(f"backend: {som.backend_}, lattice shape: {lattice.shape}")
    print(
        f"quantization error: {quantization_error(data, lattice):.4f}, "
        f"topographic error: {topographic_error(data, lattice, is_torus):.4f}"
    )

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(lattice)
    ax.set_title("trained lattice as colours")
    fig.savefig(os.path.join(out_dir, "lattice.png"), dpi=100)

    um = u_matrix(lattice, is_torus=is_torus)
    plot_u_matrix(um, fig_size=(6.2, 6.2)).savefig(os.path.join(out_dir, "u_matrix.png"), dpi=100)

    projection = project_on_lattice(COLORS, lattice, additional_list=COLOR_LABELS)
    for cell, labels in projection.items():
        if labels:
            print(cell, labels[0])
    closest = lattice_closest_vectors(COLORS, lattice)
    values = np.array(list(closest.values())).reshape(50, 100, -1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(values)
    for (row, col), labels in projection.items():
        for label in labels:
            ax.annotate(label, (col, row), ha="center", va="center", bbox={"fc": "white"})
    ax.set_title("closest named colour of every cell")
    fig.savefig(os.path.join(out_dir, "projection.png"), dpi=100)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, exponent in zip(axes, (1, 8), strict=True):
        activations = lattice_activations(COLORS, lattice, exponent=exponent)
        ax.imshow(activations[COLOR_LABELS.index("blue")])
        ax.set_title(f"activations of blue, exponent={exponent}")
    fig.savefig(os.path.join(out_dir, "activations.png"), dpi=100)
    plt.close("all")
    print(f"pictures written to {out_dir}")
    return lattice


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torus", action="store_true")
    args = parser.parse_args()
    main(args.out, seed=args.seed, is_torus=args.torus)
