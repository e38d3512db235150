"""SparkModel: Elephas' API over Gophas' Scala shim.

Change ``from elephas.spark_model import SparkModel`` to
``from gophas.spark_model import SparkModel`` and keep the Keras model and
the PySpark job: the model is converted to a Gophas spec and weights, the
executors run the Go kernel (no TensorFlow, no Python), and the trained
weights come back as a Keras model.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

from gophas import safetensors
from gophas.context import _facade, _session
from gophas.errors import GophasError, jvm_errors
from gophas.network import Network, is_keras_model

if TYPE_CHECKING:
    import numpy as np
    from pyspark import RDD
    from pyspark.sql import DataFrame

__all__ = ["SparkModel", "History", "load_spark_model"]

MODES = ("synchronous", "asynchronous", "hogwild")
FREQUENCIES = ("epoch", "batch")

# Elephas arguments that mean nothing here: Gophas' parameter server is gRPC
# on an ephemeral port, started per fit.
_ELEPHAS_IGNORED = ("parameter_server_mode", "port")


class History:
    """What :meth:`SparkModel.fit` returns, shaped like Keras' ``History``.

    Attributes
    ----------
    history : dict of str to list of float
        One value per epoch for ``loss``, each compiled metric and, with a
        validation split, their ``val_`` keys, merged exactly across workers;
        keys in the order Keras 3's ``fit`` gives them (sorted).
    epoch : list of int
        The epochs run, ``[0, 1, ...]`` as in Keras (a fit stopped early by
        a callback has fewer; a resumed fit's history holds the epochs
        before the failure too).
    params : dict
        Keras' ``epochs``, ``steps`` (batches per epoch over every worker)
        and ``verbose``, and ``batch_size``, ``mode``, ``frequency``.
    workers : dict of str to dict
        The same per worker (``partition-<index>``); NaN where a worker
        trained no rows in an epoch.
    epoch_seconds : list of float
        Wall-clock seconds of each epoch.
    """

    def __init__(self, raw: dict, params: dict) -> None:
        def clean(h: dict) -> dict:
            return {k: [math.nan if v is None else float(v) for v in h[k]] for k in sorted(h)}

        self.history = clean(raw.get("history", {}))
        self.workers = {w: clean(h) for w, h in raw.get("workers", {}).items()}
        self.epoch_seconds = [float(s) for s in raw.get("epochSeconds", [])]
        self.epoch = [int(e) for e in raw.get("epoch", range(len(self.epoch_seconds)))]
        self.params = {**{k: int(v) for k, v in raw.get("params", {}).items()}, **params}

    def __repr__(self) -> str:
        parts = "; ".join(f"{k}: [{', '.join(f'{v:.4f}' for v in vs)}]" for k, vs in self.history.items())
        return f"History({parts})"


class SparkModel:
    """A Keras model trained, run and evaluated on Spark by Gophas.

    Parameters
    ----------
    model : keras.Model, dict, str or Network
        A compiled Keras 3 model (any backend), a Gophas spec (the JSON of
        ``model.to_json()`` with its compile config, as a dict or a JSON
        string), a saved model directory (local path or Hadoop URI), or a
        :class:`gophas.network.Network`. The Go kernel checks it here: an
        unsupported layer or argument raises :class:`GophasError` naming it,
        before Spark does any work.
    mode : str, default "asynchronous"
        ``"synchronous"`` (all workers at once, updates averaged),
        ``"asynchronous"`` (each update applied alone, under a lock) or
        ``"hogwild"`` (applied without locking).
    frequency : str, default "epoch"
        When workers push their updates: every ``"epoch"`` or every ``"batch"``.
    num_workers : int, optional
        Repartition the data to this many workers; ``None`` keeps the
        partitions of the data.
    custom_objects : dict, optional
        Passed to Keras when :attr:`master_network` rebuilds the model.
    batch_size : int, default 32
        Rows per training step; ``fit`` may override it.
    weights : list of numpy.ndarray or bytes, optional
        Weights for a spec given as ``model`` (``get_weights()`` order, or a
        safetensors file); without them the Go kernel initializes the
        weights as Keras would, from ``seed``.
    seed : int, default 0
        Seed of that initialization.
    **kwargs
        Elephas' ``parameter_server_mode`` and ``port`` are accepted and
        ignored (Gophas' parameter server is gRPC on an ephemeral port).

    Attributes
    ----------
    training_histories : dict of str to dict
        After a fit, each worker's (``partition-<index>``) history, keyed
        like :attr:`History.history`.
    master_network
        The current model, a Keras model when Keras can be imported.

    Examples
    --------
    >>> from gophas import SparkModel                      # doctest: +SKIP
    >>> spark_model = SparkModel(model, frequency="epoch", mode="asynchronous", num_workers=2)
    >>> history = spark_model.fit(rdd, epochs=10, batch_size=64, verbose=0, validation_split=0.1)
    >>> loss, accuracy = spark_model.evaluate(x_test, y_test)
    """

    def __init__(self, model: Any, mode: str = "asynchronous", frequency: str = "epoch",
                 num_workers: int | None = None, custom_objects: dict | None = None, batch_size: int = 32,
                 *, weights: Any = None, seed: int = 0, **kwargs: Any) -> None:
        for k in kwargs:
            if k not in _ELEPHAS_IGNORED:
                raise TypeError(f"SparkModel() got an unexpected keyword argument {k!r}")
            warnings.warn(f"gophas: {k} is ignored: the parameter server is gRPC on an ephemeral port, started per fit",
                          stacklevel=2)
        _check_choice("mode", mode, MODES)
        _check_choice("frequency", frequency, FREQUENCIES)
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
            raise ValueError(f"num_workers must be None (the data's partitions) or a positive int, got {num_workers!r}")
        _check_positive("batch_size", batch_size)
        self.mode = mode
        self.frequency = frequency
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.custom_objects = custom_objects or {}
        self.training_histories: dict[str, dict[str, list[float]]] = {}
        self._history: History | None = None
        self._jnet = _to_jvm_network(model, weights, seed)
        with jvm_errors():
            self._jmodel = _facade().sparkModel(self._jnet, mode, frequency, num_workers or 0, batch_size)

    # ---- training ---------------------------------------------------------

    def fit(self, data: "DataFrame | RDD", epochs: int = 1, batch_size: int | None = None,
            validation_split: float = 0.0, verbose: int = 0, features_col: str = "features",
            label_col: str = "label", seed: int = 0, callbacks: list | None = None,
            validation_data: Any = None, validation_freq: "int | list[int]" = 1,
            class_weight: dict | None = None, sample_weight_col: str | None = None) -> History:
        """Trains the model on data, distributed, and returns its history.

        The model continues from its current weights; when the fit succeeds
        the trained weights become :attr:`master_network`.

        Parameters
        ----------
        data : pyspark.sql.DataFrame or pyspark.RDD
            A DataFrame with a features column (a Spark ML vector or an array
            of numbers) and a label column (a number, a class index for the
            categorical losses, or an array such as a one-hot vector), or, as
            in Elephas, an RDD of ``(x, y)`` numpy pairs
            (:func:`gophas.utils.rdd_utils.to_simple_rdd`).
        epochs : int, default 1
        batch_size : int, optional
            Rows per step; default the model's ``batch_size``.
        validation_split : float, default 0.0
            Fraction of rows (chosen at random from seed) held out and
            evaluated after each epoch as ``val_`` keys.
        verbose : int, default 0
            0: quiet; 1: a line per epoch; 2: also a line per worker.
        features_col, label_col : str
            Column names of a DataFrame.
        seed : int, default 0
            Seed of the validation split and of the workers' shuffles.
        callbacks : list, optional
            Keras callbacks, run on the driver at the epoch boundaries with
            the logs merged over the workers (see :mod:`gophas.callbacks`):
            Keras' EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
            LearningRateScheduler, TerminateOnNaN, CSVLogger,
            BackupAndRestore, History and LambdaCallback, and your own.
            With ``BackupAndRestore(dir)`` (or ``spark.gophas.checkpointDir``)
            every epoch is checkpointed, and a fit started again after a
            failure resumes from the last complete epoch.
        validation_data : DataFrame or tuple, optional
            Evaluated (exactly, distributed) after the epochs
            ``validation_freq`` picks, as ``val_`` keys: a DataFrame with the
            features and label columns (and ``sample_weight_col``), or
            ``(x_val, y_val)`` / ``(x_val, y_val, sample_weight_val)`` numpy
            arrays.
        validation_freq : int or list of int, default 1
            Validate every this many epochs, or on these epochs (from 1).
        class_weight : dict, optional
            Class index to weight: each training row's loss counts its
            class's weight, as Keras' ``class_weight``.
        sample_weight_col : str, optional
            A numeric column of per-row sample weights (Keras'
            ``sample_weight``).

        Returns
        -------
        History
        """
        _check_positive("epochs", epochs)
        batch_size = self.batch_size if batch_size is None else batch_size
        _check_positive("batch_size", batch_size)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        df = self._frame(data, features_col, label_col, labels=True)
        if sample_weight_col is not None:
            _require_column(df, sample_weight_col, "sample weight")
        from gophas import _fit

        raw = _fit.run(self, df, callbacks, validation_data, {
            "epochs": int(epochs), "batchSize": int(batch_size), "validationSplit": float(validation_split),
            "verbose": int(verbose), "featuresCol": features_col, "labelCol": label_col, "seed": int(seed),
            "validationFreq": validation_freq, "classWeight": class_weight, "sampleWeightCol": sample_weight_col})
        history = History(json.loads(raw), {"epochs": int(epochs), "batch_size": int(batch_size),
                                            "mode": self.mode, "frequency": self.frequency})
        _fit.fill_histories(callbacks, history)
        self._history = history
        self.training_histories = history.workers
        return history

    # ---- inference --------------------------------------------------------

    def predict(self, data: "DataFrame | np.ndarray | RDD", features_col: str = "features",
                output_col: str = "prediction") -> "DataFrame | np.ndarray | RDD":
        """The model's outputs for data, computed on the executors.

        Parameters
        ----------
        data : pyspark.sql.DataFrame, numpy.ndarray or pyspark.RDD
            A DataFrame (``output_col`` is appended: a vector of the outputs,
            or a double for a model with one output; columns and row order
            are kept), a numpy array of rows (as in Elephas: the outputs come
            back as a numpy array of shape ``(rows, outputs)``), or an RDD of
            feature arrays (an RDD of output arrays comes back).

        Returns
        -------
        pyspark.sql.DataFrame, numpy.ndarray or pyspark.RDD
        """
        from pyspark import RDD
        from pyspark.sql import DataFrame

        if isinstance(data, DataFrame):
            return self._predict_frame(data, features_col, output_col)
        if isinstance(data, RDD):
            df = _session().createDataFrame(data.map(_features_row), _features_schema(), verifySchema=False)
            out = self._predict_frame(df, "features", "prediction")
            return out.rdd.map(_prediction_array)
        import numpy as np

        from gophas.utils.rdd_utils import _features_dtype, _local_frame

        x = np.asarray(data)
        x = x.astype(_features_dtype(x), copy=False)  # token ids stay integers
        if x.ndim == 1:
            x = x.reshape(1, -1)

        out = self._predict_frame(_local_frame(x), "features", "prediction")
        with jvm_errors():
            rows = out.select("prediction").collect()
        return np.array([_prediction_array(r) for r in rows], dtype=np.float32).reshape(len(x), -1)

    def _predict_frame(self, df: "DataFrame", features_col: str, output_col: str) -> "DataFrame":
        from pyspark.sql import DataFrame

        _require_column(df, features_col, "features")
        if output_col in df.columns:
            raise ValueError(f"output column {output_col!r} is already in the DataFrame; choose another output_col")
        with jvm_errors():
            jdf = _facade().predict(self._jmodel, df._jdf, output_col, features_col)
        return DataFrame(jdf, df.sparkSession)

    def evaluate(self, data: "DataFrame | np.ndarray | RDD", y: "np.ndarray | None" = None,
                 features_col: str = "features", label_col: str = "label", **kwargs: Any) -> "float | list[float]":
        """The loss and metrics of the model on data, as Keras' ``evaluate``
        returns them: ``[loss, *metrics]``, or the loss alone as a float for
        a model compiled without metrics.

        Parameters
        ----------
        data : pyspark.sql.DataFrame, numpy.ndarray or pyspark.RDD
            A DataFrame with features and label columns, an RDD of ``(x, y)``
            pairs, or the features as a numpy array with ``y`` the labels.
        y : numpy.ndarray, optional
            The labels, when data is a numpy array.
        **kwargs
            Keras' ``batch_size`` and ``verbose`` are accepted and ignored.
        """
        values = self.evaluate_dict(data, y, features_col=features_col, label_col=label_col)
        scores = list(values.values())
        return scores[0] if len(scores) == 1 else scores

    def evaluate_dict(self, data: "DataFrame | np.ndarray | RDD", y: "np.ndarray | None" = None,
                      features_col: str = "features", label_col: str = "label",
                      sample_weight_col: str | None = None) -> dict[str, float]:
        """Like :meth:`evaluate`, as a dict (``{"loss": ..., "accuracy": ...}``);
        ``sample_weight_col`` names a column of per-row sample weights, which
        weigh the loss and the weighted metrics as Keras' ``sample_weight``."""
        if y is not None:
            from gophas.utils.rdd_utils import _pairs_frame

            df = _pairs_frame(data, y)
            features_col, label_col = "features", "label"
        else:
            df = self._frame(data, features_col, label_col, labels=True)
        with jvm_errors():
            raw = _facade().evaluateWeighted(self._jmodel, df._jdf, features_col, label_col, sample_weight_col or "")
        return {k: (math.nan if v is None else float(v)) for k, v in json.loads(raw).items()}

    # ---- the model --------------------------------------------------------

    @property
    def master_network(self) -> Any:
        """The current model with its trained weights: a Keras model of the
        given architecture when Keras can be imported, else a
        :class:`gophas.network.Network`."""
        net = self.network
        try:
            import keras  # noqa: F401
        except Exception:
            return net
        return net.to_keras(self.custom_objects)

    @property
    def network(self) -> Network:
        """The current model as a :class:`gophas.network.Network` (spec and weights)."""
        with jvm_errors():
            jnet = _facade().masterNetwork(self._jmodel)
            spec = json.loads(_facade().spec(jnet))
            weights = safetensors.loads(bytes(_facade().weights(jnet)))
        return Network(spec, weights)

    def get_weights(self) -> list["np.ndarray"]:
        """The current weights, in Keras' ``get_weights()`` order."""
        return self.network.get_weights()

    @property
    def server_stats(self) -> dict | None:
        """The parameter server's counters at the end of the last fit (mode,
        frequency, version, per-worker applied/refused/duplicate pushes), or
        None before any fit."""
        with jvm_errors():
            raw = _facade().lastServerStats(self._jmodel)
        return None if raw is None else json.loads(raw)

    def save(self, path: str) -> None:
        """Saves the current model as a model directory (``model.json``,
        ``model.safetensors``) at a local path or Hadoop URI; Scala's
        ``SparkModel.load`` and :func:`load_spark_model` read it."""
        with jvm_errors():
            _facade().saveModel(self._jmodel, path)

    def __repr__(self) -> str:
        return (f"SparkModel(mode={self.mode!r}, frequency={self.frequency!r}, "
                f"num_workers={self.num_workers!r}, batch_size={self.batch_size!r})")

    # ---- data -------------------------------------------------------------

    def _frame(self, data: Any, features_col: str, label_col: str, labels: bool) -> "DataFrame":
        from pyspark import RDD
        from pyspark.sql import DataFrame

        if isinstance(data, DataFrame):
            _require_column(data, features_col, "features")
            if labels:
                _require_column(data, label_col, "label")
                if features_col == label_col:
                    raise ValueError(f"features and label are the same column {features_col!r}")
            return data
        if isinstance(data, RDD):
            if features_col != "features" or label_col != "label":
                raise ValueError("features_col and label_col name DataFrame columns; an RDD holds (x, y) pairs")
            from gophas.utils.rdd_utils import _rdd_frame

            return _rdd_frame(data, self.num_workers)
        raise TypeError(f"data must be a DataFrame or an RDD of (x, y) pairs, got {type(data).__name__}")


def load_spark_model(path: str, mode: str = "asynchronous", frequency: str = "epoch",
                     num_workers: int | None = None, custom_objects: dict | None = None,
                     batch_size: int = 32) -> SparkModel:
    """A SparkModel over a saved model directory (local path or Hadoop URI),
    written by :meth:`SparkModel.save`, Scala's ``SparkModel.save`` or
    ``gophas train --out``."""
    return SparkModel(path, mode=mode, frequency=frequency, num_workers=num_workers,
                      custom_objects=custom_objects, batch_size=batch_size)


# ---- helpers ------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: use " + ", ".join(repr(c) for c in choices))


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _require_column(df: "DataFrame", name: str, role: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{role} column name must be a non-empty string, got {name!r}")
    if name not in df.columns:
        raise ValueError(f"{role} column {name!r} is not in the DataFrame; its columns are {df.columns}")


def _to_jvm_network(model: Any, weights: Any, seed: int):
    """The JVM GophasNetwork of what SparkModel was given, checked by the Go kernel."""
    if isinstance(model, SparkModel):
        return model._jnet
    facade = _facade()
    if is_keras_model(model):
        if weights is not None:
            raise ValueError("weights are taken from the Keras model; pass weights only with a spec")
        net = Network.from_keras(model)
    elif isinstance(model, Network):
        net = model
    elif isinstance(model, dict):
        net = Network(model)
    elif isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if text.lstrip().startswith("{"):
            net = Network(json.loads(text))
        elif os.path.isfile(text):
            net = Network.load(text)
        else:  # a model directory (local or a Hadoop URI): the JVM reads it, optimizer states included
            if weights is not None:
                raise ValueError("weights are taken from the model directory; pass weights only with a spec")
            with jvm_errors():
                jnet = facade.load(text)
                facade.info(jnet)  # the Go kernel checks it
                return jnet
    else:
        raise TypeError(f"model must be a Keras model, a spec (dict or JSON), a model directory or a Network, "
                        f"got {type(model).__name__}")
    if weights is not None:
        if isinstance(weights, (bytes, bytearray)):
            net = Network(net.spec, safetensors.loads(weights))
        else:
            net = Network(net.spec, [(f"w{i}", w) for i, w in enumerate(weights)])
    with jvm_errors():
        return facade.network(json.dumps(net.spec), net.weight_bytes(), int(seed))


def _features_schema():
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    return StructType([StructField("id", LongType(), False),
                       StructField("features", ArrayType(FloatType(), False), False)])


def _features_row(x: Any) -> tuple:
    import numpy as np

    return (0, np.asarray(x, dtype=np.float32).ravel().tolist())


def _prediction_array(row: Any) -> Any:
    import numpy as np

    p = row["prediction"]
    return np.asarray(p.toArray() if hasattr(p, "toArray") else [p], dtype=np.float32)
