"""Figures of one sample of a dataset file: event-camera frames (and an animation), or a raster.

A file whose provenance attributes give a sensor layout (``sensor_width``, ``sensor_height``,
``n_polarities`` and ``channel_order`` = :data:`CHANNEL_ORDER`, as the N-MNIST and DVS Gesture
converters write them), or a layout given by the caller, is drawn as frames: the sample's
timesteps binned into a few consecutive frames, ON and OFF events in two colours (Okabe-Ito
vermillion and blue; a pixel with both mixes them). Any other file (audio such as SHD, the
``temporal`` set, random data) is drawn as a raster: timestep against input channel, with the
input spikes per timestep below. Drawn and written by :mod:`pyasync_snn.plots.figure`.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..inspection import check_sample
from ..io import open_dataset
from .figure import (OKABE_ITO, POLARITY_COLOURS, figure_image, marker_size, new_figure, save_figure,
                     save_gif, style)

CHANNEL_ORDER = "polarity * width * height + y * width + x"
POLARITY_NAMES = {0: "OFF (darker)", 1: "ON (brighter)"}
DEFAULT_FRAMES = 6
FRAMES_PER_ROW = 6
GIF_MAX_FRAMES = 100  # longer samples: several timesteps per GIF frame
GIF_FRAME_MS = 120


@dataclass(frozen=True)
class Layout:
    """An event sensor: channel ``polarity * width * height + y * width + x``."""

    width: int
    height: int
    polarities: int

    def pixels(self, unit):
        """``(polarity, y, x)`` of the input channels ``unit``."""
        polarity, rest = np.divmod(np.asarray(unit, dtype=np.int64), self.width * self.height)
        y, x = np.divmod(rest, self.width)
        return polarity, y, x


def parse_sensor(text) -> tuple:
    """``"34x34"`` -> ``(34, 34)`` (width, height), or a :class:`UserError`."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise UserError(f"sensor must be WIDTHxHEIGHT in pixels, e.g. 34x34, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def sensor_layout(attrs: dict, n_inputs: int, sensor=None):
    """The :class:`Layout` of a file: from ``sensor = (width, height)`` if given (the polarities
    are ``n_inputs / (width * height)``: 1 or 2), else from its provenance attributes; None (a
    raster) when they are missing or do not describe ``n_inputs`` channels."""
    if sensor is not None:
        width, height = sensor
        polarities = n_inputs // (width * height)
        if polarities not in (1, 2) or polarities * width * height != n_inputs:
            raise UserError(f"a {width}x{height} sensor does not fit {n_inputs} input channels "
                            f"(expected {width * height} or {2 * width * height})")
        return Layout(width, height, polarities)
    width, height, polarities = (attrs.get(k) for k in ("sensor_width", "sensor_height", "n_polarities"))
    if None in (width, height, polarities) or attrs.get("channel_order") != CHANNEL_ORDER \
            or width * height * polarities != n_inputs or polarities not in (1, 2):
        return None
    return Layout(width, height, polarities)


def _attrs(provenance: dict) -> dict:
    """The provenance attributes the figures use, where present and of the right type."""
    keys = {"sensor_width": int, "sensor_height": int, "n_polarities": int, "channel_order": str,
            "class_names": str}
    return {k: v for k, v in provenance.items() if k in keys and isinstance(v, keys[k])}


def _label_text(label: int, attrs: dict) -> str:
    """``"label 3"``, with the class name when the file lists them (``class_names``, JSON)."""
    try:
        name = json.loads(attrs["class_names"])[label]
    except (KeyError, ValueError, TypeError, IndexError):
        return f"label {label}"
    return f"label {label} ({name})"


def plot_sample(path, sample, out_path, frames=DEFAULT_FRAMES, sensor=None, gif=None):
    """Draw sample ``sample`` of the dataset file ``path`` to the PNG ``out_path``: ``frames``
    frames for a sensor layout (the file's, or ``sensor = (width, height)``), else a raster. With
    ``gif``, also write an animation there (sensor layouts only): one frame per timestep, or per
    few timesteps when there are more than :data:`GIF_MAX_FRAMES`. Returns the Figure."""
    if int(frames) != frames or frames < 1:
        raise UserError(f"frames must be a positive integer, got {frames}")
    with open_dataset(path) as data:
        b = check_sample(data, sample)
        batch = data.take(b, b + 1)
        name = data.name or os.path.splitext(os.path.basename(os.fspath(path)))[0]
        attrs = _attrs(data.attrs)
    layout = sensor_layout(attrs, batch.n_inputs, sensor)
    if gif is not None and layout is None:
        raise UserError("an animation needs a sensor layout: this file has none; give the sensor "
                        "size (e.g. --sensor 34x34)")
    title = f"{name}: sample {b}, {_label_text(int(batch.labels[0]), attrs)}"
    with style():
        if layout is None:
            fig = _raster(batch, title)
        else:
            fig = _frames(batch, layout, title, min(int(frames), batch.n_timesteps))
        save_figure(fig, out_path)
        if gif is not None:
            write_animation(batch, layout, title, gif)
    return fig


# ---------------------------------------------------------------- frames
def frame_edges(n_timesteps: int, n_frames: int) -> np.ndarray:
    """``n_frames + 1`` timestep boundaries splitting ``0..n_timesteps`` into near-equal frames."""
    return np.unique(np.linspace(0, n_timesteps, n_frames + 1).round().astype(np.int64))


def frame_counts(batch, layout: Layout, edges) -> np.ndarray:
    """Events per ``(frame, polarity, y, x)``; frame ``i`` holds timesteps ``edges[i]..edges[i+1]-1``."""
    counts = np.zeros((len(edges) - 1, layout.polarities, layout.height, layout.width), np.int64)
    frame = np.searchsorted(edges, batch.timestep, side="right") - 1
    np.add.at(counts, (frame, *layout.pixels(batch.unit)), 1)
    return counts


def _colour_scale(counts) -> float:
    """The count drawn at full colour: the 98th percentile of the non-empty pixels (at least 1)."""
    nonzero = counts[counts > 0]
    return max(1.0, float(np.percentile(nonzero, 98))) if nonzero.size else 1.0


def frame_image(counts, scale) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` of one frame's ``counts (P, H, W)`` on white: each polarity
    tints its pixels towards its colour in proportion to ``count / scale`` (one polarity: black)."""
    from matplotlib.colors import to_rgb

    image = np.ones(counts.shape[1:] + (3,))
    for p, c in enumerate(counts):
        colour = np.array(to_rgb(POLARITY_COLOURS[p] if len(counts) == 2 else "black"))
        image *= 1 - np.clip(c / scale, 0, 1)[..., None] * (1 - colour)
    return image


def _polarity_legend(fig, layout):
    from matplotlib.patches import Patch

    if layout.polarities == 2:
        handles = [Patch(color=POLARITY_COLOURS[p], label=f"{POLARITY_NAMES[p]} events") for p in (1, 0)]
    else:
        handles = [Patch(color="black", label="events")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)


def _timesteps(lo, hi) -> str:
    return f"t = {lo}" if hi - lo == 1 else f"t = {lo}-{hi - 1}"


def _frames(batch, layout, title, n_frames):
    edges = frame_edges(batch.n_timesteps, n_frames)
    counts = frame_counts(batch, layout, edges)
    scale = _colour_scale(counts)
    rows = math.ceil(len(counts) / FRAMES_PER_ROW)
    cols = math.ceil(len(counts) / rows)
    fig = new_figure((max(2.4 * cols + 0.4, 6.5), 3.0 * rows + 1.7))
    for i, c in enumerate(counts):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(frame_image(c, scale), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{_timesteps(edges[i], edges[i + 1])}\n{int(c.sum())} events", fontsize=11)
    per_polarity = counts.sum(axis=(0, 2, 3))
    split = (f" ({per_polarity[1]} ON, {per_polarity[0]} OFF)" if layout.polarities == 2 else "")
    fig.suptitle(f"{title}\n{len(batch.unit)} events{split}, {layout.width}x{layout.height} sensor\n"
                 f"{batch.n_timesteps} timesteps in {len(counts)} frame{'s' * (len(counts) > 1)}; full colour: {scale:g}+ "
                 "events per pixel")
    _polarity_legend(fig, layout)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def write_animation(batch, layout, title, path) -> None:
    """An animated GIF of the sample: one frame per timestep (several when there are more than
    :data:`GIF_MAX_FRAMES`), same colours as the frames figure, written atomically."""
    per_frame = math.ceil(batch.n_timesteps / GIF_MAX_FRAMES)
    edges = np.arange(0, batch.n_timesteps + per_frame, per_frame).clip(max=batch.n_timesteps)
    counts = frame_counts(batch, layout, np.unique(edges))
    scale = _colour_scale(counts)
    fig = new_figure((4.6, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xticks([])
    ax.set_yticks([])
    shown = ax.imshow(frame_image(counts[0], scale), interpolation="nearest")
    _polarity_legend(fig, layout)
    images = []
    for i, c in enumerate(counts):
        shown.set_data(frame_image(c, scale))
        ax.set_title(f"{title}\n{_timesteps(edges[i], edges[i + 1])}: {int(c.sum())} events", fontsize=10)
        if i == 0:  # the layout once, with a two-line title like every frame's
            fig.tight_layout(rect=(0, 0.08, 1, 0.98))
        images.append(figure_image(fig))
    save_gif(images, path, GIF_FRAME_MS)


# ---------------------------------------------------------------- raster
def _raster(batch, title):
    T, C = batch.n_timesteps, batch.n_inputs
    cells, per_cell = np.unique(batch.timestep.astype(np.int64) * C + batch.unit, return_counts=True)
    fig = new_figure((11, 7.5))
    grid = fig.add_gridspec(2, 1, height_ratios=(4, 1))
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.scatter(cells // C, cells % C, s=marker_size(len(cells)), marker="s", color="black", linewidths=0)
    top.set_ylim(-0.5, C - 0.5)
    top.set_ylabel("input channel")
    most = f", up to {per_cell.max()} in one (timestep, channel)" if len(cells) and per_cell.max() > 1 else ""
    top.set_title(f"{title}\n{len(batch.unit)} input spikes, {T} timesteps x {C} channels{most}")
    top.tick_params(labelbottom=False)
    bottom.bar(np.arange(T), np.bincount(batch.timestep, minlength=T), width=1.0, color=OKABE_ITO["blue"])
    bottom.set_xlim(-0.5, T - 0.5)
    bottom.set_xlabel("timestep")
    bottom.set_ylabel("spikes")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.2)
    fig.tight_layout()
    return fig
