"""Figures without pyplot: :func:`subplots` builds a :class:`matplotlib.figure.Figure` directly, so the library
never switches the user's backend (no ``matplotlib.use``) and figures need no closing. Imported on use."""

from __future__ import annotations


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, dpi=None, constrained_layout=False, **kwargs):
    """Like ``pyplot.subplots`` (same ``sharey``/``squeeze`` keywords), without touching pyplot's state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained" if constrained_layout else None)
    return fig, fig.subplots(nrows, ncols, **kwargs)
