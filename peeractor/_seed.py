"""Stable seeds: the same parts give the same integer in every process and on every run.

Python's ``hash()`` of a str is randomised per process, so never seed with it.
"""

from __future__ import annotations

import hashlib

__all__ = ["stable_seed"]


def stable_seed(*parts: object) -> int:
    """A 64-bit seed derived from ``repr``-free string forms of ``parts`` (blake2b)."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
