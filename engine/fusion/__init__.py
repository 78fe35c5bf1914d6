"""Sensor fusion: per-lane estimates from stop-line loops, advance loops and camera zones, with a health
state per detector inferred from its own data. The model, and why each rule is there, is documented in
docs/fusion.md; its 'Code map' names each step below and the state it reads and writes.

``Fusion`` takes detector batches (``update(batch)``) and gives observations (``observations(t)``), a
:class:`engine.policies.base.FusedObservations`: a superset of ``Observations`` (same first four fields,
same meaning), so every policy kernel accepts it. Per lane, vectorised over lanes, once per batch:

- ``queue``: standing vehicles (camera halting count; else the loop-count Kalman estimate with occupancy
  pseudo-measurements; a lane with no usable sensor: its movement group's, a standing call, or the model
  queue of a fed approach);
- ``count``: vehicles on the approach; ``gap``: seconds since a vehicle last crossed a healthy loop or left
  the lane; ``presence``: stop-line occupancy; ``rate``: smoothed arrival rate, veh/s;
- ``profile[l, k]``: vehicles predicted at the stop line k..k+1 s from now, not yet queued (advance-loop
  crossings, moving vehicles a camera sees, upstream departures where a camera is gone, neighbours' plans);
- ``wait``: head-of-queue wait; ``space``: free storage, vehicles.

Modules: ``config`` (constants, health codes), ``layout`` (the static ``FusionLayout`` compiled from the
network), ``state`` (``SensorState``, ``LaneState``, ``FusionOutputs``), ``health`` (detector health),
``model`` (the per-lane model's steps), ``upstream`` (en-route departures and plans), ``core`` (``Fusion``).
"""

from __future__ import annotations

from engine.fusion.config import DEAD, HEALTH_NAMES, NEVER, NO_DATA, OK, STALE, STUCK, FusionConfig
from engine.fusion.core import Fusion
from engine.fusion.health import FeedWatch
from engine.fusion.layout import FusionLayout
from engine.fusion.state import FusionOutputs, LaneState, SensorState

__all__ = [
    "DEAD",
    "HEALTH_NAMES",
    "NEVER",
    "NO_DATA",
    "OK",
    "STALE",
    "STUCK",
    "FeedWatch",
    "Fusion",
    "FusionConfig",
    "FusionLayout",
    "FusionOutputs",
    "LaneState",
    "SensorState",
]
