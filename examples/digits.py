"""A map of scikit-learn's handwritten digits (8x8 images, 1797 samples) and its pictures.

Needs scikit-learn (``pip install gpusom[examples]``); the data ship with it, nothing is
downloaded. Run ``python examples/digits.py --out DIR`` (default ``examples/out-digits``); it
writes ``lattice.png`` (the codebook as colours of its first three principal components),
``u_matrix.png``, ``component_planes.png`` (all 64 pixels), ``hit_map.png``, ``labels_map.png``
(the most frequent digit per cell) and ``activations.png`` (how the first sample lights the map).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from gpusom import (
    SOM,
    plot_activations,
    plot_component_planes,
    plot_hit_map,
    plot_labels_map,
    plot_lattice,
    plot_u_matrix,
    quantization_error,
    topographic_error,
    u_matrix,
)

try:
    from sklearn.datasets import load_digits
except ImportError:  # pragma: no cover - depends on the environment
    raise SystemExit(
        "this example needs scikit-learn: pip install 'gpusom[examples]' (or scikit-learn)"
    ) from None


def main(out_dir, seed=0, is_torus=False, iterations=30000, size=(20, 30)):
    os.makedirs(out_dir, exist_ok=True)
    digits = load_digits()
    data, labels = digits.data, digits.target
    som = SOM(som_size=size, is_torus=is_torus, init="pca", seed=seed)
    lattice = som.train(data, num_iterations=iterations, normalize=True)
    # The lattice lives in the scaled space, so the pictures of data use the scaled data.
    scaled = som.scale(data)
    print(f"backend: {som.backend_}, lattice shape: {lattice.shape}")
    print(
        f"quantization error: {quantization_error(scaled, lattice):.4f}, "
        f"topographic error: {topographic_error(scaled, lattice, is_torus):.4f}"
    )

    def path(name):
        return os.path.join(out_dir, name)

    plot_lattice(lattice, save_to=path("lattice.png"))
    plot_u_matrix(u_matrix(lattice, is_torus), fig_size=(7, 5), save_to=path("u_matrix.png"))
    pixel_names = [f"pixel ({row}, {col})" for row in range(8) for col in range(8)]
    plot_component_planes(lattice, feature_names=pixel_names, save_to=path("component_planes.png"))
    plot_hit_map(scaled, lattice, save_to=path("hit_map.png"))
    plot_labels_map(scaled, labels, lattice, save_to=path("labels_map.png"))
    fig = plot_activations(scaled[0], lattice, exponent=4, save_to=None)
    fig.axes[0].set_title(f"activations of sample 0 (a {labels[0]}), exponent 4")
    fig.savefig(path("activations.png"), bbox_inches="tight")
    plt.close("all")
    print(f"pictures written to {out_dir}")
    return lattice


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out-digits"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torus", action="store_true")
    parser.add_argument("--iterations", type=int, default=30000)
    args = parser.parse_args()
    main(args.out, seed=args.seed, is_torus=args.torus, iterations=args.iterations)
