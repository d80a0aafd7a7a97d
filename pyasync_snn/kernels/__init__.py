"""Numba kernels over plain arrays. Nothing here knows about files, options or Python objects."""
