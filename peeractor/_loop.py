"""``run_until``: simpy's ``Environment.run(until=t)`` as one tight loop.

simpy's ``run`` calls ``step()`` once per event; a simulation of 10,000 nodes processes
millions of events, and that call is a measurable share of the run. This loop does what
``step`` does, event for event, in the same order (the heap's (time, priority, id)
order), with the same semantics: callbacks cleared before they run, a ``StopSimulation``
raised by a callback ends the run and re-queues the event's remaining callbacks, a failed
event that nobody defused crashes the run. It is used only for a plain
``simpy.Environment``: subclasses (``RealtimeEnvironment`` paces ``step``) keep ``run``.
"""

from __future__ import annotations

from heapq import heappop

import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT, Event, EventPriority

__all__ = ["run_until"]


def run_until(env: simpy.Environment, until: float) -> None:
    """Process ``env``'s events until its clock reaches ``until`` (> now), as ``env.run``."""
    if type(env) is not simpy.Environment:
        env.run(until=until)
        return
    at = float(until)
    if not at > env.now:
        raise ValueError(f"until ({at}) must be greater than the current simulation time")
    stop = Event(env)
    stop._ok = True
    stop._value = None
    env.schedule(stop, URGENT, at - env.now)
    stop.callbacks.append(StopSimulation.callback)
    queue = env._queue
    try:
        while queue:
            env._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            try:
                for callback in callbacks:
                    callback(event)
            except StopSimulation:
                event.callbacks = callbacks[callbacks.index(callback) + 1 :]
                env.schedule(event, EventPriority(-1))
                raise
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
    except StopSimulation:
        return
    raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {stop}')
