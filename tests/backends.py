"""Driving a backend through its interface, as ``SOM.train`` does, for the agreement tests."""

from gpusom._math import NEIGHBORHOODS


def train_with(backend, codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood,
               truncate=3.0):  # fmt: skip
    """One slice of online steps through ``backend``: ``(host codebook, BMU of every step)``."""
    device_codebook, device_data = backend.to_device(codebook, data)
    bmus = backend.train_online(
        device_codebook,
        device_data,
        order,
        sigmas,
        lrs,
        rows,
        cols,
        is_torus,
        NEIGHBORHOODS[neighborhood],
        truncate,
    )
    return backend.to_host(device_codebook, codebook.shape[1]), bmus
