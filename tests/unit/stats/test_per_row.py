"""judge.stats._validation.per_row: numpy's broadcast of a scalar or per-row value, with an
array already of one float per row passed through (the same values)."""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats._validation import per_row


@pytest.mark.parametrize("values", [0.3, [0.3], [0.1, 0.2, 0.3], np.array([1, 2, 3])])
def test_per_row_gives_numpys_broadcast(values: object) -> None:
    expected = np.broadcast_to(np.asarray(values, dtype=np.float64), (3,))
    got = per_row(values, 3)  # type: ignore[arg-type]
    assert got.dtype == np.float64
    assert got.tolist() == expected.tolist()


def test_per_row_rejects_a_wrong_number_of_rows() -> None:
    with pytest.raises(ValueError, match="broadcast"):
        per_row([0.1, 0.2], 3)
