"""numpy batch queries over many coordinates: distances, k nearest, all pairs.

Same semantics as ``Coordinate.distance_to`` (Euclidean part + heights, plus adjustments
unless that makes the distance non-positive), vectorised::

    packed = pack(coords)
    distances(me, packed)      # estimated RTT from ``me`` to each, seconds
    k_nearest(me, packed, 10)  # indices of the 10 closest, closest first (ties: lower index)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dvms.vivaldi.coordinate import Coordinate, InvalidCoordinate

__all__ = ["PackedCoordinates", "distances", "k_nearest", "pack", "pairwise_distances"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class PackedCoordinates(NamedTuple):
    """Coordinates as arrays: ``vecs`` (n, d), ``heights`` (n,), ``adjustments`` (n,)."""

    vecs: FloatArray
    heights: FloatArray
    adjustments: FloatArray

    @property
    def size(self) -> int:
        """Number of packed coordinates."""
        return int(self.heights.shape[0])


def pack(coords: Sequence[Coordinate], dimensionality: int | None = None) -> PackedCoordinates:
    """Pack coordinates of one dimensionality (``dimensionality`` needed when empty)."""
    if not coords:
        d = dimensionality if dimensionality is not None else 0
        return PackedCoordinates(np.zeros((0, d)), np.zeros(0), np.zeros(0))
    d = len(coords[0].vec)
    if any(len(c.vec) != d for c in coords):
        raise InvalidCoordinate("pack: coordinates of different dimensionality")
    return PackedCoordinates(
        np.array([c.vec for c in coords], dtype=np.float64).reshape(len(coords), d),
        np.array([c.height for c in coords], dtype=np.float64),
        np.array([c.adjustment for c in coords], dtype=np.float64),
    )


def distances(origin: Coordinate, packed: PackedCoordinates) -> FloatArray:
    """Estimated RTT (seconds) from ``origin`` to each packed coordinate."""
    if packed.vecs.shape[1] != len(origin.vec) and packed.size:
        raise InvalidCoordinate(
            f"dimensionality conflict: {len(origin.vec)} vs {packed.vecs.shape[1]}"
        )
    diff = packed.vecs - np.asarray(origin.vec, dtype=np.float64)
    raw: FloatArray = np.sqrt(np.einsum("ij,ij->i", diff, diff)) + packed.heights + origin.height
    adjusted = raw + packed.adjustments + origin.adjustment
    return np.where(adjusted > 0.0, adjusted, raw)


def k_nearest(
    origin: Coordinate,
    packed: PackedCoordinates,
    k: int,
    exclude: npt.NDArray[np.bool_] | None = None,
) -> IntArray:
    """Indices of the ``k`` coordinates closest to ``origin``, closest first.

    ``exclude``: a boolean mask of entries to skip. Ties are broken by the lower index.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    dist = distances(origin, packed)
    index = np.arange(dist.shape[0])
    if exclude is not None:
        keep = ~exclude
        dist, index = dist[keep], index[keep]
    if k < dist.shape[0]:
        part = np.argpartition(dist, k - 1)[:k] if k else np.zeros(0, dtype=np.intp)
        # include every entry tied with the k-th so the tie-break below is exact
        if k:
            cut = dist[part].max()
            part = np.flatnonzero(dist <= cut)
        dist, index = dist[part], index[part]
    order = np.lexsort((index, dist))[:k]
    result: IntArray = index[order]
    return result


def pairwise_distances(packed: PackedCoordinates) -> FloatArray:
    """The (n, n) matrix of estimated RTTs between packed coordinates (0 on the diagonal)."""
    v = packed.vecs
    n = v.shape[0]
    euclid = np.empty((n, n))
    step = max(1, 2_000_000 // max(1, n * v.shape[1]))  # rows per chunk: bounded memory
    for start in range(0, n, step):
        diff = v[start : start + step, None, :] - v[None, :, :]
        euclid[start : start + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    raw = euclid + packed.heights[:, None] + packed.heights[None, :]
    adjusted = raw + packed.adjustments[:, None] + packed.adjustments[None, :]
    out: FloatArray = np.where(adjusted > 0.0, adjusted, raw)
    np.fill_diagonal(out, 0.0)
    return out
