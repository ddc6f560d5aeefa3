"""Posterior summary table: one row per scalar, ArviZ-style columns.

``summary(res)`` gives, for every scalar element of every variable (``sigma``,
``b[75]``, ``x[1,2]``): mean, sd, the highest-density interval bounds
(``hdi_3%``/``hdi_97%`` for ``hdi_prob=0.94``), ``mcse_mean``, ``mcse_sd``,
``ess_bulk``, ``ess_tail`` and ``r_hat`` (see :mod:`nutslite.diagnostics`).
pandas is optional and only imported by :meth:`Summary.to_pandas`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nutslite._diagnostic_kernels import COLUMNS, scalar_statistics
from nutslite.diagnostics import DIAGNOSTIC_COLUMNS, _all_statistics, _scalar_sources

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Summary", "hdi", "summary"]

FloatArray = NDArray[np.float64]

_DECIMALS = {"ess_bulk": 0, "ess_tail": 0, "r_hat": 2}
"""Decimals shown per column (ArviZ's rounding); other columns show 3."""


def _check_prob(hdi_prob: float) -> None:
    if not 0 < hdi_prob <= 1:
        raise ValueError(f"hdi_prob must be in (0, 1], got {hdi_prob}")


def hdi(x: ArrayLike, hdi_prob: float = 0.94) -> FloatArray:
    """Highest-density interval of the pooled draws (shortest interval, unimodal).

    ``x`` has shape ``(draws,)``, ``(chains, draws)`` or ``(..., chains, draws)``;
    chains and draws are pooled.  Returns ``[lower, upper]`` with shape
    ``(..., 2)``: the shortest interval ``[x_(i), x_(i+j)]`` of the sorted draws
    with ``j = floor(hdi_prob * S)``, as ArviZ's ``az.hdi(..., multimodal=False)``.
    """
    _check_prob(hdi_prob)
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    lead = arr.shape[:-2]
    batch = arr.reshape((math.prod(lead),) + arr.shape[-2:])
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(batch).all(axis=(1, 2)) & (batch[0].size > 0)
    # a min_draws beyond the draws skips the split-chain statistics: only mean, sd and HDI
    stats = scalar_statistics(batch, finite, hdi_prob, min_draws=batch.shape[-1] + 1)
    columns = [COLUMNS.index("hdi_low"), COLUMNS.index("hdi_high")]
    return stats[:, columns].reshape(lead + (2,))


def _hdi_column_names(hdi_prob: float) -> tuple[str, str]:
    """ArviZ's names for the HDI bounds, e.g. ``("hdi_3%", "hdi_97%")`` for 0.94."""
    alpha = 1 - hdi_prob
    return f"hdi_{100 * alpha / 2:g}%", f"hdi_{100 * (1 - alpha / 2):g}%"


def _format_cell(value: float, decimals: int) -> str:
    """Fixed-point with ``decimals`` places; scientific for very large or tiny values."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if decimals == 3 and value != 0 and (magnitude >= 1e5 or magnitude < 5e-4):
        return f"{value:.2e}"
    return f"{value:.{decimals}f}"


class Summary:
    """A table of per-scalar statistics: ``rows`` (scalar names) by ``columns``.

    ``summary["r_hat"]`` is a column as an ndarray aligned with ``rows``;
    ``to_dict()`` / ``from_dict()`` round-trip it; ``str(summary)`` is an aligned
    text table; ``to_pandas()`` gives a DataFrame if pandas is installed.
    """

    def __init__(self, rows: Sequence[str], columns: Mapping[str, ArrayLike]) -> None:
        self.rows: list[str] = [str(row) for row in rows]
        self._data: dict[str, FloatArray] = {}
        for name, values in columns.items():
            arr = np.asarray(values, dtype=float)
            if arr.shape != (len(self.rows),):
                raise ValueError(
                    f"column {name!r} has shape {arr.shape}, expected ({len(self.rows)},)"
                )
            self._data[name] = arr

    @property
    def columns(self) -> list[str]:
        """The column names, in display order."""
        return list(self._data)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> FloatArray:
        try:
            return self._data[column]
        except KeyError:
            raise KeyError(f"no column {column!r}; columns are {self.columns}") from None

    def to_dict(self) -> dict[str, NDArray[Any]]:
        """``{"name": row names, column: values, ...}`` as ndarrays (copies)."""
        out: dict[str, NDArray[Any]] = {"name": np.array(self.rows, dtype=str)}
        out.update({name: values.copy() for name, values in self._data.items()})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, ArrayLike]) -> Summary:
        """Inverse of :meth:`to_dict`: the ``"name"`` entry gives the rows."""
        columns = {key: values for key, values in data.items() if key != "name"}
        return cls(list(np.asarray(data["name"], dtype=str)), columns)

    def to_pandas(self) -> pd.DataFrame:
        """The table as a ``pandas.DataFrame`` indexed by scalar name."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Summary.to_pandas() needs pandas, which is not installed; "
                "install pandas or use Summary.to_dict()"
            ) from err
        return pd.DataFrame(
            {name: values.copy() for name, values in self._data.items()},
            index=pd.Index(self.rows),
        )

    def __str__(self) -> str:
        name_width = max([len(row) for row in self.rows], default=0)
        cells = {
            column: [_format_cell(float(v), _DECIMALS.get(column, 3)) for v in values]
            for column, values in self._data.items()
        }
        widths = {
            column: max([len(column)] + [len(cell) for cell in texts])
            for column, texts in cells.items()
        }
        lines = ["  ".join([" " * name_width] + [column.rjust(widths[column]) for column in cells])]
        for i, row in enumerate(self.rows):
            lines.append(
                "  ".join(
                    [row.ljust(name_width)]
                    + [texts[i].rjust(widths[column]) for column, texts in cells.items()]
                )
            )
        return "\n".join(line.rstrip() for line in lines)

    __repr__ = __str__


def summary(
    res_or_posterior: Any,
    var_names: Sequence[str] | None = None,
    hdi_prob: float = 0.94,
) -> Summary:
    """Summarise posterior draws, one row per scalar.

    ``res_or_posterior`` is an object with a ``.posterior`` mapping or such a
    mapping ``name -> ndarray (chains, draws, *shape)``.  ``var_names`` selects
    and orders variables (default: all).  Columns: ``mean``, ``sd`` (``ddof=1``),
    the HDI bounds named as ArviZ does (``hdi_3%``, ``hdi_97%`` for
    ``hdi_prob=0.94``; see :func:`hdi`), then ``mcse_mean``, ``mcse_sd``,
    ``ess_bulk``, ``ess_tail`` and ``r_hat`` as
    :func:`nutslite.diagnostics.scalar_diagnostics` (warnings about constant,
    NaN or too-short draws are issued once).  All columns come from one
    compiled pass over the draws (:func:`nutslite.diagnostics.all_statistics`).
    Vector elements are named ``b[75]``, array elements ``x[1,2]`` (0-based).
    """
    _check_prob(hdi_prob)
    posterior = getattr(res_or_posterior, "posterior", res_or_posterior)
    if not isinstance(posterior, Mapping):
        raise TypeError(
            "summary() needs an object with a .posterior mapping or a mapping "
            f"name -> (chains, draws, ...) array, got {type(res_or_posterior).__name__}"
        )
    names, sources = _scalar_sources(posterior, var_names)
    stats = _all_statistics(sources, (len(names),), hdi_prob, warn=True) if names else None
    low_name, high_name = _hdi_column_names(hdi_prob)
    sources = {"mean": "mean", "sd": "sd", low_name: "hdi_low", high_name: "hdi_high"}
    sources.update({name: name for name in DIAGNOSTIC_COLUMNS})
    columns: dict[str, FloatArray] = {
        column: stats[source] if stats is not None else np.empty(0)
        for column, source in sources.items()
    }
    return Summary(names, columns)
