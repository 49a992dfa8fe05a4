"""Power: a linear model per host, energy integrated exactly over the run.

A live host draws ``idle_w + (max_w − idle_w) × u`` watts, ``u`` the fraction of its CPU
capacity in use (``min(demand, capacity) / capacity``); a crashed host draws 0 W. Power is
piecewise constant between changes, so energy is integrated exactly: on every change the
meter adds ``total_w × (t − t_last)`` to the energy, then updates the host's share.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.infrastructure import SimHost

__all__ = ["PowerMeter", "host_power_w"]

JOULES_PER_KWH = 3.6e6


def host_power_w(host: SimHost, idle_w: float, max_w: float) -> float:
    """Instantaneous power of one host (W)."""
    if not host.alive:
        return 0.0
    return idle_w + (max_w - idle_w) * host.utilisation()


class PowerMeter:
    """Total power of the hosts and the energy used so far."""

    def __init__(self, hosts: Sequence[SimHost], idle_w: float, max_w: float, t0: float = 0.0):
        self.idle_w = idle_w
        self.max_w = max_w
        self._watts = [host_power_w(h, idle_w, max_w) for h in hosts]
        self.total_w = sum(self._watts)
        self.energy_j = 0.0
        self._t = t0

    def advance(self, t: float) -> None:
        """Integrate up to ``t`` at the current power."""
        if t > self._t:
            self.energy_j += self.total_w * (t - self._t)
            self._t = t

    def update(self, host: SimHost, t: float) -> None:
        """``host``'s power may have changed at ``t``."""
        watts = host_power_w(host, self.idle_w, self.max_w)
        old = self._watts[host.index]
        if watts != old:
            self.advance(t)
            self._watts[host.index] = watts
            self.total_w += watts - old

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / JOULES_PER_KWH

    def hosts_on(self) -> int:
        return sum(1 for w in self._watts if w > 0)
