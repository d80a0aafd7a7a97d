"""The embedded *spatial* dataset: scikit-learn's 8x8 digits seen by a simulated event camera
along N-MNIST's three saccades. It stands in for N-MNIST, offline and in seconds.

**Generation** (deterministic for a seed; every random draw comes from one
``numpy.random.default_rng(seed)`` in a fixed order):

1. The 1797 digits of ``sklearn.datasets.load_digits()`` (8x8, values 0..16) are placed at offset
   (2, 2) on a 12 x 12 canvas; intensity ``I = b + (1 - b) * value / 16`` with background
   ``b = 0.1`` (a bright digit on a dark background, like the MNIST digits N-MNIST recorded).
2. The canvas moves along a triangle like N-MNIST's saccades: down-right, left, up-right back to
   the start, vertices ``(0, -a)``, ``(a, a)``, ``(-a, a)`` pixels (x right, y down) with
   ``a = 1.5``, 100 ms per leg. Frames are sampled every 10 ms (31 frames, 30 steps), shifted by
   sub-pixel amounts with bilinear interpolation.
3. Each pixel is an event-camera pixel with a reference log intensity (set from the first frame,
   which emits nothing). Between frames ``k`` and ``k + 1`` the log intensity is interpolated
   linearly; every crossing of ``reference +- C`` (contrast threshold ``C = 0.5``) emits one ON
   (increase, polarity 1) or OFF (polarity 0) event at the crossing time and moves the reference
   by ``C``. Each event time gets gaussian jitter (sd 1 ms) and is clipped inside its 10 ms step.
4. Background noise: independent events at 0.5 Hz per pixel (uniform time, pixel and polarity),
   about 22 per sample.
5. Each sample is written with :func:`nmnist.write_bin` into a temporary directory in the official
   layout ``Train/<digit>/<id>.bin`` / ``Test/<digit>/<id>.bin`` (``id`` = index in
   ``load_digits``, 5 digits), listed with :func:`nmnist.list_split` and read back with
   :func:`nmnist.read_bin`: the code path of real N-MNIST files.
6. Channels ``p * 144 + y * 12 + x`` (288 inputs); binned into 30 timesteps of 10 ms
   (:mod:`binning`); a stratified split (per class, a seeded 20% goes to the test set, rounded),
   each split in a seeded random order.

Sizes: 288 inputs, 30 timesteps, 10 classes, 1438 train / 359 test samples.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import tempfile

import numpy as np

from ..errors import UserError
from ..validate import integer
from . import nmnist
from .binning import Generated, bin_samples, stratified_split

CANVAS = 12
DIGIT_SIZE = 8
OFFSET = 2
N_CLASSES = 10
N_INPUTS = CANVAS * CANVAS * 2

DEFAULTS = {
    "canvas": CANVAS,
    "step_us": 10_000,
    "n_timesteps": 30,
    "saccade_amplitude_px": 1.5,
    "background": 0.1,
    "contrast_threshold": 0.5,
    "jitter_us": 1000.0,
    "noise_rate_hz": 0.5,
    "test_fraction": 0.2,
}


@functools.lru_cache(maxsize=1)
def _digits():
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the spatial dataset needs scikit-learn (pip install scikit-learn)")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if os.path.exists(path):
        table = np.loadtxt(path, delimiter=",")
        images, labels = table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE), table[:, -1]
    else:  # pragma: no cover - a scikit-learn that stores its data elsewhere
        from sklearn.datasets import load_digits as _load
        digits = _load()
        images, labels = digits.images, digits.target
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if images.shape != (1797, DIGIT_SIZE, DIGIT_SIZE) or labels.shape != (1797,):
        raise UserError(f"unexpected scikit-learn digits: images {images.shape}, labels {labels.shape}")
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_digits():
    """``(images (1797, 8, 8) float in [0, 16], labels (1797,))``: the digits scikit-learn bundles
    (the data of ``sklearn.datasets.load_digits()``, read from its ``digits.csv.gz`` directly,
    which avoids importing ``sklearn.datasets``: 0.05 s instead of ~3 s)."""
    return _digits()


def saccade_path(n_timesteps=30, amplitude=1.5) -> np.ndarray:
    """``(n_timesteps + 1, 2)`` shifts ``(dx, dy)`` in pixels at each frame: A -> B -> C -> A,
    one third of the steps per leg (N-MNIST: down-right, left, up-right)."""
    a = amplitude
    vertices = np.array([[0.0, -a], [a, a], [-a, a], [0.0, -a]])
    s = np.linspace(0.0, 3.0, n_timesteps + 1)  # position along the path, in legs
    leg = np.minimum(s.astype(int), 2)
    frac = (s - leg)[:, None]
    return vertices[leg] * (1 - frac) + vertices[leg + 1] * frac


def _shift(canvas, dx, dy) -> np.ndarray:
    """Bilinear sub-pixel shift of ``canvas (N, H, W)`` by ``(dx, dy)``; ink must not reach the
    border within the shift (true for a digit at offset 2 and |shift| < 2)."""
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    out = np.zeros_like(canvas)
    for sx, wx in ((ix, 1 - fx), (ix + 1, fx)):
        for sy, wy in ((iy, 1 - fy), (iy + 1, fy)):
            if wx * wy:
                out += wx * wy * np.roll(canvas, (sy, sx), axis=(1, 2))
    return out


def _camera_events(images, p, rng) -> tuple:
    """Events of all samples at once: ``(sample, t_us, x, y, polarity)``, each sample's events
    sorted by time. Vectorized over samples and pixels; a Python loop over the 30 steps only."""
    n = len(images)
    side, step_us, n_steps = p["canvas"], p["step_us"], p["n_timesteps"]
    canvas = np.zeros((n, side, side))
    canvas[:, OFFSET:OFFSET + DIGIT_SIZE, OFFSET:OFFSET + DIGIT_SIZE] = images / 16.0
    b, c = p["background"], p["contrast_threshold"]
    path = saccade_path(n_steps, p["saccade_amplitude_px"])
    log_frame = lambda k: np.log(b + (1 - b) * _shift(canvas, *path[k])).reshape(n, -1)
    level = log_frame(0)
    reference = level.copy()
    parts = []
    for k in range(n_steps):
        nxt = log_frame(k + 1)
        diff = nxt - reference
        count = np.floor(np.abs(diff) / c).astype(np.int64)
        s_idx, pix = np.nonzero(count)
        reps = count[s_idx, pix]
        if reps.size:
            sign = np.sign(diff[s_idx, pix])
            # j-th crossing (1..reps) of each active pixel
            first = np.repeat(np.cumsum(reps) - reps, reps)
            j = np.arange(reps.sum()) - first + 1
            s_ev, pix_ev = np.repeat(s_idx, reps), np.repeat(pix, reps)
            sign_ev = np.repeat(sign, reps)
            start, end = level[s_ev, pix_ev], nxt[s_ev, pix_ev]
            crossing = reference[s_ev, pix_ev] + sign_ev * j * c
            frac = (crossing - start) / (end - start)
            parts.append((s_ev, k, frac, pix_ev, (sign_ev > 0).astype(np.int8)))
        reference += np.sign(diff) * count * c
        level = nxt
    sample = np.concatenate([q[0] for q in parts])
    step = np.concatenate([np.full(len(q[0]), q[1]) for q in parts])
    frac = np.concatenate([q[2] for q in parts])
    pix = np.concatenate([q[3] for q in parts])
    pol = np.concatenate([q[4] for q in parts])
    jitter = rng.normal(0.0, p["jitter_us"] / step_us, len(frac))
    frac = np.clip(frac + jitter, 0.0, 1.0 - 1.0 / step_us)
    t_us = ((step + frac) * step_us).astype(np.int64)
    # background noise
    duration_us = n_steps * step_us
    n_noise = rng.poisson(p["noise_rate_hz"] * side * side * duration_us * 1e-6, n)
    total = int(n_noise.sum())
    sample = np.concatenate([sample, np.repeat(np.arange(n), n_noise)])
    t_us = np.concatenate([t_us, rng.integers(0, duration_us, total)])
    pix = np.concatenate([pix, rng.integers(0, side * side, total)])
    pol = np.concatenate([pol, rng.integers(0, 2, total).astype(np.int8)])
    order = np.lexsort((pix, t_us, sample))
    sample, t_us, pix, pol = sample[order], t_us[order], pix[order], pol[order]
    y, x = np.divmod(pix, side)
    return sample, t_us, x, y, pol


def generate(seed=0, n_per_class=None, workdir=None, **overrides) -> Generated:
    """Generate the spatial dataset (module docstring) for ``seed``.

    ``n_per_class`` keeps a seeded subset of that many digits per class (for quick tests);
    ``overrides`` change entries of :data:`DEFAULTS`. ``workdir`` is where the temporary
    ``.bin`` tree goes (default: the system temporary directory); it is removed afterwards.
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown spatial parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **overrides}
    if p["canvas"] != CANVAS:
        raise UserError(f"the canvas is fixed at {CANVAS} pixels")
    if n_per_class is not None:
        integer("n_per_class", n_per_class, 1, "a positive integer")
    rng = np.random.default_rng(seed)
    images, labels = load_digits()
    train_idx, test_idx = stratified_split(labels, p["test_fraction"], rng, n_per_class)
    chosen = np.sort(np.concatenate([train_idx, test_idx]))
    sample, t_us, x, y, pol = _camera_events(images[chosen], p, rng)
    bounds = np.searchsorted(sample, np.arange(len(chosen) + 1))
    split_of = {int(i): "train" for i in train_idx} | {int(i): "test" for i in test_idx}

    with tempfile.TemporaryDirectory(prefix="pyasync-snn-spatial-", dir=workdir) as root:
        for split in nmnist.SPLITS.values():
            for digit in range(N_CLASSES):
                os.makedirs(os.path.join(root, split, str(digit)))
        for row, i in enumerate(chosen):
            lo, hi = bounds[row], bounds[row + 1]
            path = os.path.join(root, nmnist.SPLITS[split_of[int(i)]], str(labels[i]), f"{i:05d}.bin")
            nmnist.write_bin(path, x[lo:hi], y[lo:hi], pol[lo:hi], t_us[lo:hi], overflow="error",
                             durable=False)
        splits = {}
        for split, order in (("train", train_idx), ("test", test_idx)):
            events = {}
            for path, label in nmnist.list_split(root, split)[0]:
                ident = int(os.path.basename(path)[:-4])
                if label != labels[ident]:
                    raise AssertionError(f"{path}: label {label} != {labels[ident]}")
                events[ident] = nmnist.read_bin(path)
            if sorted(events) != sorted(int(i) for i in order):
                raise AssertionError(f"{split}: the files read back are not the samples written")
            ev = [events[int(i)] for i in order]
            units = [nmnist.channel_index(e["x"], e["y"], e["polarity"], CANVAS, CANVAS) for e in ev]
            batch, time_us, dropped = bin_samples([e["t_us"] for e in ev], units, labels[order],
                                                  N_INPUTS, p["step_us"], p["n_timesteps"])
            if dropped:
                raise AssertionError(f"{dropped} events fell outside the {p['n_timesteps']} bins")
            splits[split] = (batch, time_us)

    half = CANVAS * CANVAS
    stats = {split: {"on_fraction": float(np.mean(b.unit >= half)) if len(b.unit) else 0.0}
             for split, (b, _) in splits.items()}
    return Generated(splits["train"][0], splits["test"][0], splits["train"][1], splits["test"][1],
                     N_CLASSES, parameters={**p, "n_per_class": n_per_class}, stats=stats)
