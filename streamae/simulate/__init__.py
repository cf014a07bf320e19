"""Simulated multi-sensor, multi-channel feeds with labelled anomaly events.

``simulate`` builds a run in memory (tests, training data); ``Simulator`` generates a
long run slice by slice (the ``simulate`` command); ``write_run`` saves one to files.
"""

from streamae.simulate.anomalies import ANOMALY_KINDS, max_anomaly_rate, readings_per_event
from streamae.simulate.output import write_run
from streamae.simulate.signals import SensorModel, channel_names
from streamae.simulate.simulator import (
    DEFAULT_START_MS,
    AnomalyEvent,
    SimulatedData,
    Simulator,
    length_for,
    simulate,
)

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_START_MS",
    "AnomalyEvent",
    "SensorModel",
    "SimulatedData",
    "Simulator",
    "channel_names",
    "length_for",
    "max_anomaly_rate",
    "readings_per_event",
    "simulate",
    "write_run",
]
