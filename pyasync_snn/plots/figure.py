"""The figure helper and the palette that every figure of :mod:`pyasync_snn.plots` uses.

A figure is drawn on matplotlib's Agg canvas directly (``matplotlib.figure.Figure`` +
``FigureCanvasAgg``): it works without a display and never switches the caller's (pyplot)
backend. Every image is written through :func:`pyasync_snn.io.atomic.atomic_path` (a temporary
file next to the target, then renamed over it), so a reader never sees a half-written file.

Colours are the Okabe-Ito palette, which stays distinct for the common colour-vision
deficiencies (plus three neutral greys), with named roles: layers (which also differ in marker
shape), series on one axes, schedules, ON/OFF events and excitatory/inhibitory current.
"""
from __future__ import annotations

from ..io.atomic import atomic_path

OKABE_ITO = {"orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "reddish purple": "#CC79A7", "black": "#000000",
             "grey": "#999999", "light grey": "#BBBBBB", "dark grey": "#333333"}
_C = OKABE_ITO
LAYER_COLOURS = (_C["blue"], _C["orange"], _C["bluish green"], _C["reddish purple"], _C["vermillion"],
                 _C["sky blue"], _C["black"])
LAYER_MARKERS = ("o", "s", "D", "^", "v", "P", "X")
LINE_COLOURS = (_C["blue"], _C["vermillion"], _C["bluish green"], _C["reddish purple"], _C["orange"],
                _C["sky blue"], _C["black"])  # several series on one axes
SCHEDULE_COLOURS = {"layered": _C["blue"], "random": _C["orange"], "momentum": _C["bluish green"]}
POLARITY_COLOURS = {0: _C["blue"], 1: _C["vermillion"]}  # OFF, ON events
CURRENT_COLOURS = {"excitatory": _C["blue"], "inhibitory": _C["vermillion"]}

STYLE = {"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "legend.fontsize": 11,
         "xtick.labelsize": 11, "ytick.labelsize": 11, "figure.titlesize": 15}
DPI = 110


def layer_colour(layer: int) -> str:
    """Colour of ``layer`` (counted from 0)."""
    return LAYER_COLOURS[layer % len(LAYER_COLOURS)]


def layer_marker(layer: int) -> str:
    """Marker of ``layer`` (counted from 0)."""
    return LAYER_MARKERS[layer % len(LAYER_MARKERS)]


def marker_size(n: int) -> float:
    """Scatter marker size for ``n`` points: smaller as they crowd."""
    return 40 if n <= 300 else 16 if n <= 3000 else 5 if n <= 30000 else 1.5


def style():
    """The font sizes of the figures, as a context (``with style(): ...``)."""
    import matplotlib

    return matplotlib.rc_context(STYLE)


def new_figure(figsize, dpi=DPI):
    """A Figure on its own Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=DPI) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def figure_image(fig):
    """``fig`` rendered at its own size and dpi, as an RGB ``PIL.Image``."""
    import numpy as np
    from PIL import Image

    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


def save_image(image, path, **options) -> None:
    """Write the ``PIL.Image`` ``image`` to ``path`` atomically (``options`` go to ``Image.save``)."""
    with atomic_path(path) as tmp:
        image.save(tmp, **options)


def save_gif(images, path, duration) -> None:
    """An animated GIF of ``images`` that loops forever; ``duration``: ms per frame (or a list)."""
    save_image(images[0], path, format="GIF", save_all=True, append_images=images[1:],
               duration=duration, loop=0)
