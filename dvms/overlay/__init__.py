"""Overlays: the next node outside a partition (``lbo``, ``ring``, ``random``)."""

from dvms.overlay.base import Overlay
from dvms.overlay.factory import OVERLAYS, make_overlay
from dvms.overlay.lbo import LboOverlay
from dvms.overlay.random_overlay import RandomOverlay
from dvms.overlay.ring import RingOverlay, build_ring

__all__ = [
    "OVERLAYS",
    "LboOverlay",
    "Overlay",
    "RandomOverlay",
    "RingOverlay",
    "build_ring",
    "make_overlay",
]
