"""Learning curves of a training run: loss and accuracy per epoch, train and test, as a PNG
(drawn and written by :mod:`pyasync_snn.plots.figure`)."""
from __future__ import annotations

import os
import time

from .figure import new_figure, save_figure

REDRAW_EVERY = 30.0  # seconds: how often a running training's curves are redrawn, at most


def curves_path(model_path) -> str:
    """``run.h5 -> run.curves.png`` (a name without ``.h5`` just gets ``.curves.png`` appended)."""
    path = os.fspath(model_path)
    stem = path[:-3] if path.endswith(".h5") else path
    return stem + ".curves.png"


def draw_checkpoint_curves(model_path, history: dict, config) -> None:
    """The ``on_checkpoint`` callback of :func:`pyasync_snn.training.train`: the curves of the run
    so far to :func:`curves_path` ``(model_path)``, titled by the training configuration."""
    plot_learning_curves(history, curves_path(model_path), config.describe())


class CheckpointCurves:
    """The ``on_checkpoint`` callback of the CLI's ``train`` and of the study: the curves
    (:func:`draw_checkpoint_curves`) after the first and the last checkpoint of the run, and in
    between after a checkpoint only if ``every`` seconds have passed since the last drawing. (A
    drawing takes about 0.2 s; at every epoch it was a third of the README's training, warm.)"""

    def __init__(self, every: float = REDRAW_EVERY):
        self.every = every
        self.drawn_at = None

    def __call__(self, model_path, history: dict, config) -> None:
        epochs = history.get("epoch", [])
        last = bool(epochs) and epochs[-1] >= config.epochs
        if self.drawn_at is None or last or time.monotonic() - self.drawn_at >= self.every:
            draw_checkpoint_curves(model_path, history, config)
            self.drawn_at = time.monotonic()


def plot_learning_curves(history: dict, path, title: str = "") -> None:
    """Draw ``history`` (the dict :func:`pyasync_snn.training.train` returns) to the PNG ``path``.

    Left panel: mean cross-entropy loss; right panel: accuracy (by spike count). Each shows the
    ``train_*`` series and, when present, the ``test_*`` series, against ``history["epoch"]``.
    """
    epochs = list(history.get("epoch", []))
    fig = new_figure((10, 4), dpi=100)
    panels = (("loss", "loss (cross-entropy)"), ("accuracy", "accuracy"))
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        for split, style in (("train", "o-"), ("test", "s--")):
            series = history.get(f"{split}_{key}")
            if series is not None and len(series) == len(epochs) and epochs:
                ax.plot(epochs, series, style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if key == "accuracy":
            ax.set_ylim(-0.02, 1.02)
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
            ax.legend(loc="best")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title or "learning curves")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
