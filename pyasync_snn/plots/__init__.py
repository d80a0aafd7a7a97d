"""Figures written to files (matplotlib's Agg canvas; never a window, no global backend change)."""
from .curves import curves_path, plot_learning_curves

__all__ = ["curves_path", "plot_learning_curves"]
