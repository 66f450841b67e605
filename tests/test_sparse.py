"""Sparse products (engine/sparse.py) against numpy's dense ones."""

from __future__ import annotations

import numpy as np

from engine.carrier import SMOOTHING_BANDS, envelope_matrix
from engine.config import AnalysisConfig
from engine.sparse import SparseMatrix


def test_a_sparse_product_equals_the_dense_one_for_the_carrier_s_matrices_and_a_random_one():
    config = AnalysisConfig().at_rate(48000)
    rng = np.random.default_rng(0)
    scattered = rng.standard_normal((40, 30)) * (rng.random((40, 30)) < 0.1)
    scattered[:, 3] = 0.0  # an empty column gives zeros
    for dense in (config.filterbank.T, envelope_matrix(config, SMOOTHING_BANDS), scattered):
        frames = rng.standard_normal((3, dense.shape[0]))
        product = SparseMatrix(dense).product(frames)
        assert product.shape == (3, dense.shape[1])
        np.testing.assert_allclose(product, frames @ dense, rtol=1e-12, atol=1e-12)
    assert not SparseMatrix(scattered).product(np.ones((1, 40)))[0, 3]
