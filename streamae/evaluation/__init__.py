"""Detection quality: point-wise, event-level (Orion overlap) and NAB scores.

``evaluate_folder(detections_dir, data_dir, labels)`` is the entry point; the
metric functions are exact and small enough to check by hand.
"""

from streamae.evaluation.folder import evaluate_folder
from streamae.evaluation.labels import ColumnLabels, Labels, WindowLabels, load_labels
from streamae.evaluation.metrics import Counts, event_counts, point_counts, runs
from streamae.evaluation.nab import PROFILES, NabEvents, NabScore, Profile, nab_events, nab_score
from streamae.evaluation.report import EvaluationReport, Tally

__all__ = [
    "PROFILES",
    "ColumnLabels",
    "Counts",
    "EvaluationReport",
    "Labels",
    "NabEvents",
    "NabScore",
    "Profile",
    "Tally",
    "WindowLabels",
    "evaluate_folder",
    "event_counts",
    "load_labels",
    "nab_events",
    "nab_score",
    "point_counts",
    "runs",
]
