import pytest

from capsnet.nn import conv_fourier


@pytest.fixture
def fourier_form(monkeypatch):
    """``fourier_form(*dtypes)``: the PrimaryCaps layer takes its Fourier form for products in these dtypes
    (none: oneDNN's kernels), at any batch (the tests' batches are below the form's minimum)."""

    def take(*dtypes):
        monkeypatch.setattr(conv_fourier, "_FOURIER_DTYPES", frozenset(dtypes))
        monkeypatch.setattr(conv_fourier, "_FOURIER_MIN_BATCH", 1)

    return take
