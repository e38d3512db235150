"""Gophas models in Python: a spec and its weights, to and from Keras.

A Gophas model is the JSON Keras' ``model.to_json()`` writes (a supported
subset of layers), with its compile config as
``{"model": <to_json()>, "compile": {"optimizer", "loss", "metrics"}}``, and
its weights as named float32 tensors in Keras' ``get_weights()`` order. A
model directory holds ``model.json`` and ``model.safetensors``; Gophas'
Scala ``SparkModel.load``, ``gophas train --out`` and this module read and
write the same directories.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Sequence

from gophas import safetensors
from gophas.errors import GophasError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Network", "is_keras_model"]

SPEC_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"

# Keys of Keras' compile config that Gophas reads, and those it cannot honor
# when set.
_COMPILE_KEYS = ("optimizer", "loss", "metrics", "weighted_metrics")
_UNSUPPORTED_COMPILE = ("loss_weights",)


def _compile_keys(cc: dict) -> dict:
    """The keys of a Keras compile config that Gophas reads
    (``weighted_metrics`` only when set, as Keras leaves it out)."""
    return {k: cc.get(k) for k in _COMPILE_KEYS if k != "weighted_metrics" or cc.get(k) is not None}


def is_keras_model(obj: Any) -> bool:
    """True when obj looks like a Keras model (``to_json`` and ``get_weights``)."""
    return callable(getattr(obj, "to_json", None)) and callable(getattr(obj, "get_weights", None)) \
        and type(obj).__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow")


class Network:
    """A Gophas model held in Python: its spec and its weights.

    Parameters
    ----------
    spec : dict
        ``{"model": <Keras model.to_json(), parsed>, "compile": {...}}``, or
        a plain parsed ``to_json()``.
    weights : sequence of (str, numpy.ndarray), optional
        Named tensors in Keras' ``get_weights()`` order; ``None`` when the
        Go kernel is to initialize them.
    """

    def __init__(self, spec: dict, weights: Sequence[tuple[str, "np.ndarray"]] | None = None) -> None:
        if not isinstance(spec, dict):
            raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
        self.spec = spec
        self.weights = list(weights) if weights is not None else None

    # ---- Keras ------------------------------------------------------------

    @classmethod
    def from_keras(cls, model: Any) -> "Network":
        """The network of a Keras 3 model: its architecture (``to_json()``),
        its compile config and its weights (``get_weights()``).

        Raises
        ------
        GophasError
            If the model was compiled with an argument Gophas cannot honor
            (``loss_weights``).
        """
        model_json = json.loads(model.to_json())
        cc = model_json.pop("compile_config", None)
        spec: dict = {"model": model_json}
        if cc:
            for key in _UNSUPPORTED_COMPILE:
                if cc.get(key) is not None:
                    raise GophasError(f"gophas: the model was compiled with {key}={cc[key]!r}, which Gophas does not support")
            spec["compile"] = _compile_keys(cc)
            if spec["compile"]["metrics"] is None:
                spec["compile"]["metrics"] = []
        arrays = model.get_weights()
        names = [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.weights]
        if len(names) != len(arrays) or len(set(names)) != len(names):
            names = [getattr(w, "path", None) or f"w{i}" for i, w in enumerate(model.weights)]
        if len(names) != len(arrays) or len(set(names)) != len(names):
            names = [f"w{i}" for i in range(len(arrays))]
        return cls(spec, list(zip(names, arrays)))

    def to_keras(self, custom_objects: dict | None = None) -> Any:
        """The Keras model of this network's architecture with its weights,
        compiled with its compile config when it has one.

        Parameters
        ----------
        custom_objects : dict, optional
            Passed to ``keras.models.model_from_json``.
        """
        import keras

        model_json = dict(self.model_json)
        model_json.pop("compile_config", None)
        model = keras.models.model_from_json(json.dumps(model_json), custom_objects=custom_objects)
        if self.weights is not None:
            model.set_weights([a for _, a in self.weights])
        compile_config = self.compile_config
        if compile_config:
            model.compile_from_config(dict(compile_config))
        return model

    # ---- parts ------------------------------------------------------------

    @property
    def model_json(self) -> dict:
        """The architecture: Keras' ``to_json()``, parsed."""
        return self.spec["model"] if "model" in self.spec and isinstance(self.spec["model"], dict) else self.spec

    @property
    def compile_config(self) -> dict | None:
        """The optimizer, loss and metrics, or None for an uncompiled model."""
        if "compile" in self.spec:
            return self.spec["compile"]
        cc = self.model_json.get("compile_config")
        return _compile_keys(cc) if cc else None

    def get_weights(self) -> list["np.ndarray"]:
        """The weights as Keras' ``get_weights()`` returns them."""
        return [a for _, a in (self.weights or [])]

    def to_json(self) -> str:
        """The spec as JSON (the ``model.json`` of a model directory)."""
        return json.dumps(self.spec)

    def weight_bytes(self) -> bytes | None:
        """The weights as a safetensors file, or None without weights."""
        return safetensors.dumps(self.weights) if self.weights is not None else None

    # ---- model directories ------------------------------------------------

    def save(self, path: str) -> None:
        """Writes the network as a local model directory (``model.json``,
        ``model.safetensors``), which Scala's ``SparkModel.load`` reads.

        Both files are written under temporary names and renamed into place
        once both are complete: a save that fails (a full disk) leaves the
        files that were there."""
        if self.weights is None:
            raise GophasError("gophas: a network without weights cannot be saved")
        os.makedirs(path, exist_ok=True)
        files = [(WEIGHTS_FILE, self.weight_bytes()), (SPEC_FILE, self.to_json().encode("utf-8"))]
        temps = []
        try:
            for name, data in files:
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=path)
                temps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            for (name, _), tmp in zip(files, temps):
                os.replace(tmp, os.path.join(path, name))
        except OSError as e:
            for tmp in temps:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
            raise GophasError(f"gophas: saving the model to {path} failed: {e}; the files that were there are unchanged") from e

    @classmethod
    def load(cls, path: str) -> "Network":
        """Reads a local model directory (or a lone ``model.json`` file)."""
        spec_path = os.path.join(path, SPEC_FILE) if os.path.isdir(path) else path
        weights_path = os.path.join(os.path.dirname(spec_path), WEIGHTS_FILE)
        if not os.path.isfile(spec_path):
            raise GophasError(f"gophas: {path} is not a Gophas model directory: {SPEC_FILE} is missing")
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
        weights = None
        if os.path.isfile(weights_path):
            with open(weights_path, "rb") as f:
                weights = safetensors.loads(f.read())
        return cls(spec, weights)

    def __repr__(self) -> str:
        name = self.model_json.get("config", {}).get("name") if isinstance(self.model_json.get("config"), dict) else None
        n = sum(int(a.size) for _, a in self.weights) if self.weights else 0
        return f"Network({name!r}, {n} weights)"
