"""Batch training on data held in chunks: a Dask array trained on a local cluster.

Run ``python examples/dask_batch.py [--samples N] [--workers W]`` after
``pip install -e ".[dask]"``. The samples are generated chunk by chunk by ``dask.array.random``
and never gathered: each epoch is one map-reduce over the chunks (per-cell sums and counts
travel, the samples stay in their workers), then the same map answers lazily. The result is the
map that ``SOM(algorithm="batch")`` trains on the same samples in memory (``tests/test_dask.py``).
"""

import argparse
from timeit import default_timer as timer

import dask.array as da
from distributed import Client, LocalCluster

from gpusom import SOM


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    with LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster, Client(cluster):
        data = da.random.default_rng(0).random((args.samples, 8), chunks=(250_000, 8))
        som = SOM((20, 30), num_iterations=args.epochs, seed=0, verbose=False)
        start = timer()
        som.fit(data)  # a Dask array: batch epochs, one map-reduce each
        print(f"{args.epochs} epochs on {args.samples:,} samples: {timer() - start:.1f} s")
        error = som.quantization_error(data)  # lazy: a dask scalar
        print(f"quantization error {float(error.compute()):.4f}")
        cells = som.transform(data[:5]).compute()
        print("best units of the first five samples:", cells.tolist())


if __name__ == "__main__":
    main()
