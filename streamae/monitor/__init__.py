"""The live monitor: Kafka readings through the detection core; scores, alerts and
dead letters back to Kafka (``streamae monitor``)."""

from streamae.monitor.service import Monitor

__all__ = ["Monitor"]
