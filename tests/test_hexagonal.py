"""The hexagonal lattice: its geometry against brute force, training on every engine against
the oracle, the u-matrix and the topographic error with six neighbours, the settings."""

import naive
import numpy as np
import pytest
from conftest import TOLERANCES
from engines import train_with
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusom import SOM, topographic_error, u_matrix
from gpusom._math import HEXAGONAL, RECTANGULAR, quadrance
from gpusom.schedules import exponential_decay


@st.composite
def lattice_and_torus(draw, topology):
    is_torus = draw(st.booleans())
    rows = draw(st.integers(1, 7))
    if is_torus and topology == "hexagonal":
        rows = 2 * draw(st.integers(1, 4))
    return rows, draw(st.integers(1, 7)), is_torus


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_quadrance_is_four_times_the_squared_distance_between_positions(topology, data):
    rows, cols, is_torus = data.draw(lattice_and_torus(topology))
    bmu = data.draw(st.integers(0, rows * cols - 1))
    code = HEXAGONAL if topology == "hexagonal" else RECTANGULAR
    got = [
        quadrance(n // cols, n % cols, bmu // cols, bmu % cols, rows, cols, is_torus, code)
        for n in range(rows * cols)
    ]
    expected = 4 * naive.grid_distance_sq(rows, cols, bmu, is_torus, topology)
    np.testing.assert_array_equal(got, expected)


def test_six_neighbours_at_distance_one_and_the_torus_wraps():
    rows, cols = 6, 5
    for cell, expected in [(2 * cols + 2, 6), (3 * cols + 2, 6), (0, 2), (cols, 5)]:
        d2 = naive.grid_distance_sq(rows, cols, cell, False, "hexagonal")
        assert np.count_nonzero(d2 == 1) == expected
        assert d2[d2 > 0].min() == 1  # nothing nearer than a neighbour
    for cell in range(rows * cols):
        d2 = naive.grid_distance_sq(rows, cols, cell, True, "hexagonal")
        assert np.count_nonzero(d2 == 1) == 6
    # odd row 1 sits half a cell right: (1, 0) touches (0, 0) and (0, 1), not (0, 2)
    q = [quadrance(1, 0, 0, c, rows, cols, False, HEXAGONAL) for c in range(3)]
    assert q == [4, 4, 12]


@pytest.mark.parametrize("neighborhood", ["gaussian", "bubble", "triangle", "mexican_hat"])
@pytest.mark.parametrize(
    ("rows", "cols", "is_torus", "dtype", "sigma"),
    [
        (5, 6, False, np.float32, 2.0),
        (4, 5, True, np.float32, 1.5),
        (2, 7, True, np.float64, 3.0),
        (6, 1, False, np.float64, 9.0),
    ],
)
def test_engine_trains_the_hexagonal_lattice_as_the_oracle(
    engine, rng, neighborhood, rows, cols, is_torus, dtype, sigma
):
    steps = 24
    data = rng.normal(size=(30, 4)).astype(dtype)
    codebook = rng.normal(size=(rows * cols, 4)).astype(dtype)
    args = (
        rng.integers(0, len(data), steps),
        exponential_decay(sigma, 0.4, np.arange(steps), steps),
        exponential_decay(0.5, 0.05, np.arange(steps), steps),
        rows,
        cols,
        is_torus,
        neighborhood,
        2.5,
        "hexagonal",
    )
    expected, expected_bmus = naive.online_som(codebook, data, *args)
    got, bmus = train_with(engine, codebook, data, *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


@given(data=st.data())
@settings(max_examples=50, deadline=None)
def test_hexagonal_u_matrix_equals_brute_force(data):
    rows, cols, is_torus = data.draw(lattice_and_torus("hexagonal"))
    lattice = np.random.default_rng(data.draw(st.integers(0, 999))).random((rows, cols, 3))
    np.testing.assert_allclose(
        u_matrix(lattice, is_torus, topology="hexagonal"),
        naive.u_matrix(lattice, is_torus, "hexagonal"),
        rtol=1e-12,
        atol=1e-12,
    )


def test_topographic_error_counts_six_neighbours():
    # Cells 0 = (0, 0) and 6 = (1, 1) of a 2x5 map are diagonal: 8-neighbours on the square
    # grid, but on the hexagonal one row 1 is shifted right, so they are 1.5 apart.
    lattice = np.full((2, 5, 1), 100.0)
    lattice[0, 0, 0], lattice[1, 1, 0], lattice[1, 0, 0] = 0.0, 0.2, 50.0
    data = [[0.05]]
    assert topographic_error(data, lattice) == 0.0
    assert topographic_error(data, lattice, topology="hexagonal") == 1.0
    lattice[1, 0, 0] = 0.2  # now (1, 0), a hexagonal neighbour of (0, 0), is second best
    lattice[1, 1, 0] = 50.0
    assert topographic_error(data, lattice, topology="hexagonal") == 0.0


def test_som_on_a_hexagonal_lattice(rng, tmp_path):
    data = rng.random((40, 3))
    som = SOM((4, 6), True, topology="hexagonal", seed=0, verbose=False)
    lattice = som.train(data, 500)
    assert som.settings_["topology"] == "hexagonal"
    assert som.topographic_error(data) == topographic_error(
        data, lattice, True, topology="hexagonal"
    )
    loaded = SOM.load(som.save(tmp_path / "hex.npz"))
    assert loaded.topology == "hexagonal" and loaded.settings_["topology"] == "hexagonal"
    assert loaded.topographic_error(data) == som.topographic_error(data)


def test_a_hexagonal_torus_needs_an_even_number_of_rows(rng):
    with pytest.raises(ValueError, match=r"even number of rows.*rows=5"):
        SOM((5, 4), True, topology="hexagonal", verbose=False).train(rng.random((9, 2)), 5)
    with pytest.raises(ValueError, match="even number of rows"):
        u_matrix(np.zeros((3, 4, 2)), True, topology="hexagonal")
    with pytest.raises(ValueError, match="topology must be one of 'rectangular', 'hexagonal'"):
        SOM((2, 2), topology="hex", verbose=False).train(rng.random((9, 2)), 5)
