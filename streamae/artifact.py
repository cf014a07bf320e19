"""Model artifacts: a folder with ``model.safetensors`` and ``model.json``; never pickle.

- ``model.safetensors``: the module's weights (safetensors cannot hold code).
- ``model.json``: ``format``/``format_version``, ``arch`` and ``hyperparameters``,
  ``window_size``, ``channels`` (in input order), ``scaler`` parameters,
  ``training_data`` (rows, sensors, files, sha256 of the values), ``training``
  (config and results), ``normal_scores`` (window scores on held-back normal
  data, the threshold's warm start), ``libraries``, ``created_at`` and
  ``content_hash``.

``content_hash`` is the sha256 of the canonical JSON (sorted keys, no
whitespace, without ``content_hash`` itself) followed by the weights file's
bytes; the model version is its first 12 hex digits. ``load`` recomputes it, so
a model edited after saving is refused rather than silently used.

>>> save(detector, "models/pump")             # doctest: +SKIP
>>> load("models/pump", device="cpu").version  # doctest: +SKIP
'3f2a9c1b0d4e'
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
from safetensors import SafetensorError

from streamae.detectors.autoencoder import ARCHITECTURES, AutoencoderDetector, Scaler
from streamae.exceptions import ArtifactError

FORMAT = "streamae-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
#: Fields of model.json besides the content hash; all must be present.
REQUIRED = (
    "format",
    "format_version",
    "arch",
    "hyperparameters",
    "window_size",
    "channels",
    "scaler",
    "normal_scores",
    "training_data",
    "training",
    "libraries",
    "created_at",
)


def document(detector: AutoencoderDetector) -> dict[str, Any]:
    """The content of ``model.json`` for ``detector``, without ``content_hash``."""
    info = detector.info
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": detector.arch,
        "hyperparameters": {k: int(v) for k, v in detector.hyperparameters.items()},
        "window_size": detector.window_size,
        "channels": list(detector.channels),
        "scaler": {
            "method": detector.scaler.method,
            "center": detector.scaler.center.tolist(),
            "scale": detector.scaler.scale.tolist(),
        },
        "normal_scores": detector.normal_scores.tolist(),
        "training_data": info.get("training_data", {}),
        "training": info.get("training", {}),
        "libraries": info["libraries"],
        "created_at": info["created_at"],
    }


def weights(detector: AutoencoderDetector) -> bytes:
    """The bytes of ``model.safetensors`` for ``detector``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.module.state_dict().items()}
    return safetensors.torch.save(tensors, metadata={"format": "pt"})


def content_hash(detector: AutoencoderDetector) -> str:
    """The full hex content hash ``detector`` has (or will have) when saved."""
    return _hash(document(detector), weights(detector))


def save(detector: AutoencoderDetector, folder: str | Path) -> Path:
    """Write ``detector`` into ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    check_target(folder)
    doc = document(detector)
    blob = weights(detector)
    digest = _hash(doc, blob)
    text = json.dumps({**doc, "content_hash": digest}, indent=2, allow_nan=False) + "\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so a crash never leaves half a file.
        for name, data in ((WEIGHTS_FILE, blob), (META_FILE, text.encode("utf-8"))):
            partial = folder / f".{name}.partial"
            partial.write_bytes(data)
            os.replace(partial, folder / name)
    except OSError as exc:
        raise ArtifactError(f"cannot write the model to {folder}: {exc.strerror or exc}") from exc
    return folder


def check_target(folder: Path) -> None:
    """Refuse a folder ``save`` must not write into (checked before training, too)."""
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"cannot save the model: {folder} is a file, not a folder")
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    # A new or empty folder (a .gitkeep is no data), or a model (or the half a crash
    # left) to replace.
    if names & {META_FILE, WEIGHTS_FILE} or all(name.startswith(".") for name in names):
        return
    raise ArtifactError(
        f"cannot save the model into {folder}: it holds other files and no model; "
        "choose a new or empty folder (a model folder is replaced by the new model)"
    )


def load(folder: str | Path, device: str = "auto") -> AutoencoderDetector:
    """Read and verify the model in ``folder``; scoring runs on ``device``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(
            f"model folder {folder} is a file; give the folder `streamae train --out` wrote"
        )
    if not folder.is_dir():
        raise ArtifactError(
            f"model folder {folder} does not exist; train one with `streamae train --out {folder}`"
        )
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise ArtifactError(
                f"{path} is missing: {folder} is not a complete streamae model; "
                "copy the whole folder or retrain"
            )
    try:
        text = meta_path.read_text(encoding="utf-8")
        blob = weights_path.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read the model in {folder}: {exc}") from exc
    doc = _parse(text, meta_path)
    stored = doc.pop("content_hash")
    if _hash(doc, blob) != stored:
        raise ArtifactError(
            f"the model in {folder} was modified after it was saved (hash mismatch); "
            "retrain or restore it"
        )
    return _build(doc, blob, device, stored, meta_path)


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _hash(doc: dict[str, Any], blob: bytes) -> str:
    digest = hashlib.sha256(_canonical(doc))
    digest.update(blob)
    return digest.hexdigest()


def _parse(text: str, path: Path) -> dict[str, Any]:
    """Decode model.json and check the format before trusting anything else in it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "restore it or retrain"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a streamae model description")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has model format version {doc.get('format_version')!r}; this streamae "
            f"reads version {FORMAT_VERSION}: retrain the model or use a matching streamae"
        )
    missing = [key for key in (*REQUIRED, "content_hash") if key not in doc]
    if missing:
        raise ArtifactError(f"{path} is malformed: missing {', '.join(missing)}")
    try:
        _canonical(doc)
    except ValueError as exc:
        raise ArtifactError(f"{path} is malformed: {exc}") from exc
    return doc


def _build(
    doc: dict[str, Any], blob: bytes, device: str, digest: str, path: Path
) -> AutoencoderDetector:
    """The detector a verified document and weights describe."""
    try:
        arch = doc["arch"]
        if arch not in ARCHITECTURES:
            raise ArtifactError(
                f"{path}: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)}); "
                "this model needs a newer streamae"
            )
        hyperparameters = doc["hyperparameters"]
        channels = [str(c) for c in doc["channels"]]
        center = np.asarray(doc["scaler"]["center"], dtype=np.float64)
        scale = np.asarray(doc["scaler"]["scale"], dtype=np.float64)
        normal_scores = np.asarray(doc["normal_scores"], dtype=np.float64)
        if not (
            hyperparameters.get("window") == doc["window_size"]
            and hyperparameters.get("channels") == len(channels)
            and center.shape == scale.shape == (len(channels),)
            and normal_scores.ndim == 1
        ):
            raise ArtifactError(
                f"{path} is inconsistent: window size, channels and scaler do not agree"
            )
        module = ARCHITECTURES[arch](**hyperparameters)
        module.load_state_dict(safetensors.torch.load(blob), strict=True)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"{path} is malformed: {type(exc).__name__}: {exc}") from exc
    except (RuntimeError, SafetensorError) as exc:
        raise ArtifactError(
            f"the weights in {path.parent} do not fit architecture {arch!r}: {exc}"
        ) from exc
    info = {key: doc[key] for key in ("training_data", "training", "libraries", "created_at")}
    return AutoencoderDetector(
        module,
        arch,
        channels,
        Scaler(center, scale, doc["scaler"].get("method", "robust")),
        normal_scores,
        info=info,
        device=device,
        version=digest[:12],
    )
