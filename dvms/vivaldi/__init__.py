"""Vivaldi network coordinates (Dabek et al. 2004, with HashiCorp Serf's refinements).

Runtime-free: imports nothing from ``peeractor``, ``sim`` or ``deploy``. Seconds everywhere::

    from dvms.vivaldi import VivaldiConfig, VivaldiClient, Coordinate
    client = VivaldiClient(VivaldiConfig(dimensionality=2), random.Random(1))
    client.update("peer-a", peer_coordinate, rtt_s=0.012)
    client.distance_to(peer_coordinate)   # estimated RTT, seconds

Batch queries over many coordinates (numpy) are in ``dvms.vivaldi.batch``; the evaluation
harness (topologies, ``simulate``, ``evaluate``) in ``dvms.testing``.
"""

from dvms.vivaldi.client import ClientStats, VivaldiClient
from dvms.vivaldi.config import VivaldiConfig
from dvms.vivaldi.coordinate import Coordinate, InvalidCoordinate, InvalidRtt, VivaldiError

__all__ = [
    "ClientStats",
    "Coordinate",
    "InvalidCoordinate",
    "InvalidRtt",
    "VivaldiClient",
    "VivaldiConfig",
    "VivaldiError",
]
