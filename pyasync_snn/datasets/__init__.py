"""Input data: generators of embedded datasets and readers of the field's raw formats."""
from .random import random_events

__all__ = ["random_events"]
