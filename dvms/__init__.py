"""dvms: locality-aware decentralised VM scheduling (DVMS over a Vivaldi-based overlay)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
