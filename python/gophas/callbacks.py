"""Callbacks of a Gophas fit, run on the driver at the epoch boundaries.

A fit takes Keras' callbacks as Keras' ``fit`` does:

* Keras' own callback objects are translated: ``EarlyStopping``,
  ``ModelCheckpoint``, ``ReduceLROnPlateau``, ``TerminateOnNaN``,
  ``CSVLogger`` and ``BackupAndRestore`` run in the Scala shim with Keras'
  rules (and are checkpointed with the fit); ``LearningRateScheduler`` (its
  schedule is a Python function), ``LambdaCallback`` and ``History`` run
  here. Those that make no sense on Spark (``TensorBoard``,
  ``ProgbarLogger``, ``RemoteMonitor``, ``SwapEMAWeights``, ...) are
  refused by name, with the reason.
* Callbacks you write, subclasses of ``keras.callbacks.Callback`` or of
  :class:`Callback` here, run here with Keras' hooks ``on_train_begin``,
  ``on_epoch_begin``, ``on_epoch_end`` and ``on_train_end``, receiving the
  merged logs of every worker. Their ``self.model`` is a :class:`FitModel`:
  ``stop_training``, ``optimizer.learning_rate`` (read and set),
  ``get_weights``, ``set_weights``, ``save`` and ``save_weights``, as on a
  Keras model. A callback with ``get_state``/``set_state`` (JSON-able
  values) has its state checkpointed and restored when a fit resumes.

Batch-level hooks (``on_train_batch_end``, ...) are not called: the batches
run on the executors.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable

from gophas import safetensors
from gophas.errors import GophasError

__all__ = ["Callback", "FitModel", "LearningRateScheduler", "translate"]

# Keras callbacks the Scala shim runs, with the attributes their config is
# read from (Keras' callbacks have no get_config).
_TRANSLATED = {
    "EarlyStopping": ("monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights",
                      "start_from_epoch"),
    "ReduceLROnPlateau": ("monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"),
    "ModelCheckpoint": ("filepath", "monitor", "verbose", "save_best_only", "save_weights_only", "mode"),
    "TerminateOnNaN": ("raise_error",),
    "CSVLogger": ("filename", "append"),
    "BackupAndRestore": ("backup_dir", "delete_checkpoint"),
}

# Keras callbacks refused, and why.
_REFUSED = {
    "TensorBoard": "it writes TensorFlow event files from the training process, which runs on the executors in Go",
    "ProgbarLogger": "the driver prints a line per epoch with verbose=1 instead",
    "RemoteMonitor": "it posts each batch's logs from the training process, which runs on the executors",
    "SwapEMAWeights": "Gophas optimizers do not keep an exponential moving average of the weights (use_ema)",
    "OrbaxCheckpoint": "use BackupAndRestore or ModelCheckpoint, which Gophas runs",
}


class Callback:
    """A callback with Keras' hooks, for a Gophas fit (a ``keras.callbacks.Callback``
    works the same way). ``self.model`` is the fit's :class:`FitModel` and
    ``self.params`` Keras' ``{"epochs", "steps", "verbose"}``."""

    def __init__(self) -> None:
        self.model: FitModel | None = None
        self.params: dict = {}

    def set_model(self, model: "FitModel") -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass


class _Optimizer:
    """What a callback sees of the optimizer: its learning rate."""

    def __init__(self, jfit: Any) -> None:
        self._jfit = jfit

    @property
    def learning_rate(self) -> float:
        return float(self._jfit.learningRate())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        from gophas.errors import jvm_errors

        with jvm_errors():
            self._jfit.setLearningRate(float(value))

    # Keras 2 name
    lr = learning_rate


class FitModel:
    """What a callback's ``self.model`` is during a Gophas fit: the fit's
    stop flag, its optimizer's learning rate and its current weights (on
    the parameter server), as on a Keras model."""

    def __init__(self, jfit: Any, spark_model: Any) -> None:
        self._jfit = jfit
        self._spark_model = spark_model
        self.optimizer = _Optimizer(jfit)

    @property
    def stop_training(self) -> bool:
        return bool(self._jfit.stopTraining())

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._jfit.setStopTraining(bool(value))

    def _network(self):
        from gophas.context import _facade
        from gophas.network import Network

        jnet = self._jfit.network()
        return Network(json.loads(_facade().spec(jnet)), safetensors.loads(bytes(_facade().weights(jnet))))

    def get_weights(self) -> list:
        """The current weights, in Keras' ``get_weights()`` order."""
        return self._network().get_weights()

    def set_weights(self, weights: list) -> None:
        """Installs weights (Keras' ``get_weights()`` order) on the parameter server."""
        from gophas.context import _facade
        from gophas.errors import jvm_errors

        net = self._network()
        if len(weights) != len(net.weights):
            raise ValueError(f"set_weights: {len(weights)} arrays for the model's {len(net.weights)} weights")
        named = [(name, w) for (name, _), w in zip(net.weights, weights)]
        with jvm_errors():
            self._jfit.setNetwork(_facade().network(json.dumps(net.spec), safetensors.dumps(named), 0))

    def to_keras(self) -> Any:
        """The current model as a Keras model."""
        return self._network().to_keras(getattr(self._spark_model, "custom_objects", None))

    def save(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        """Saves the current model: a ``.keras`` or ``.h5`` file through Keras,
        else a Gophas model directory (any Hadoop URI)."""
        if str(filepath).endswith((".keras", ".h5")):
            _keras_save(self.to_keras(), str(filepath), weights_only=False)
        else:
            from gophas.errors import jvm_errors

            with jvm_errors():
                self._jfit.save(str(filepath), False)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Saves the current weights: a ``.weights.h5`` file through Keras, else a safetensors file."""
        if str(filepath).endswith(".weights.h5"):
            _keras_save(self.to_keras(), str(filepath), weights_only=True)
        else:
            from gophas.errors import jvm_errors

            with jvm_errors():
                self._jfit.save(str(filepath), True)


def _keras_save(model: Any, path: str, weights_only: bool) -> None:
    import os

    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if weights_only:
        model.save_weights(path, overwrite=True)
    else:
        model.save(path, overwrite=True)


class LearningRateScheduler(Callback):
    """Keras' LearningRateScheduler: before each epoch the learning rate
    becomes ``schedule(epoch, lr)`` (or ``schedule(epoch)``), and the epoch's
    logs get ``learning_rate``."""

    def __init__(self, schedule: Callable, verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        try:
            lr = self.schedule(epoch, float(self.model.optimizer.learning_rate))
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int)) or isinstance(lr, bool):
            try:
                lr = float(lr)
            except (TypeError, ValueError):
                raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr}") from None
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _keras_class(cb: Any) -> str | None:
    """The Keras class name of a Keras built-in callback, or None for anything else."""
    for klass in type(cb).__mro__:
        module = klass.__module__ or ""
        if module.split(".")[0] in ("keras", "tf_keras") or module.startswith("tensorflow.python.keras"):
            if klass is type(cb):
                return klass.__name__
            return None  # a subclass of a Keras callback: the user's
    return None


def translate(callbacks: list | None) -> tuple[list[dict], list]:
    """Splits a fit's callbacks into the JSON configs of those the Scala shim
    runs and the Python objects run here, in order.

    Raises
    ------
    GophasError
        For a Keras callback Gophas cannot run, naming it and why.
    """
    scala: list[dict] = []
    python: list = []
    for cb in callbacks or []:
        name = _keras_class(cb)
        if name is None:
            python.append(cb)
            continue
        if name in _REFUSED:
            raise GophasError(f"gophas: keras.callbacks.{name} is not supported: {_REFUSED[name]}")
        if name in ("History", "LambdaCallback", "Callback"):
            python.append(cb)
            continue
        if name == "LearningRateScheduler":
            python.append(LearningRateScheduler(cb.schedule, getattr(cb, "verbose", 0)))
            continue
        if name not in _TRANSLATED:
            raise GophasError(f"gophas: keras.callbacks.{name} is not supported (Gophas runs EarlyStopping, ModelCheckpoint, "
                              "ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger, BackupAndRestore, "
                              "History, LambdaCallback and your own callbacks)")
        config = {}
        for attr in _TRANSLATED[name]:
            if hasattr(cb, attr):
                config[attr] = _plain(getattr(cb, attr))
        if name == "CSVLogger":
            config["separator"] = getattr(cb, "sep", ",")
        if name in ("ModelCheckpoint", "BackupAndRestore"):
            freq = getattr(cb, "save_freq", "epoch")
            if freq != "epoch":
                raise GophasError(f"gophas: keras.callbacks.{name}(save_freq={freq!r}) is not supported: "
                                  "Gophas checkpoints at the end of each epoch (save_freq='epoch')")
        if name == "ModelCheckpoint":
            # Keras keeps initial_value_threshold as the starting best value.
            if getattr(cb, "best", None) is not None:
                config["initial_value_threshold"] = float(cb.best)
            config["keras_files"] = str(cb.filepath).endswith((".keras", ".h5"))
        if name in ("EarlyStopping", "ReduceLROnPlateau") and "min_delta" in config:
            config["min_delta"] = abs(float(config["min_delta"]))
        scala.append({"class_name": name, "config": config, "index": len(scala)})
    return scala, python


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    try:
        f = float(v)
        return None if math.isnan(f) else f
    except (TypeError, ValueError):
        return str(v)


def _state(callbacks: list) -> str | None:
    """The JSON of the Python callbacks' states (those with get_state), or None."""
    states = {}
    for i, cb in enumerate(callbacks):
        get = getattr(cb, "get_state", None)
        if callable(get):
            states[str(i)] = get()
    return json.dumps(states) if states else None


def _restore(callbacks: list, raw: str | None) -> None:
    if not raw:
        return
    states = json.loads(raw)
    for i, cb in enumerate(callbacks):
        set_ = getattr(cb, "set_state", None)
        if callable(set_) and str(i) in states:
            set_(states[str(i)])


def _warn(messages: list) -> None:
    for m in messages:
        warnings.warn(m, stacklevel=3)
