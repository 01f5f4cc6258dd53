import numpy as np

from tfnmt.training.schedule import InverseSquareRoot


def test_warmup_then_inverse_square_root():
    schedule = InverseSquareRoot(peak=2e-3, warmup_steps=100)
    for step in (0, 49, 99, 100, 399, 10_000):
        s = step + 1
        expected = 2e-3 * min(s / 100, (100 / s) ** 0.5)
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(99)), 2e-3, rtol=1e-6)
