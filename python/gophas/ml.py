"""Spark ML stages for Pipelines: :class:`GophasEstimator` and :class:`GophasModel`.

PySpark wrappers (``JavaEstimator``/``JavaModel``) of the Scala stages
``io.gophas.spark.ml.GophasEstimator`` and ``GophasModel``, with the same
params, keyword-only constructors, and Pipeline persistence that works in
both directions between Python and Scala. Elephas' ``ElephasEstimator``
parameter names are accepted too, so an Elephas pipeline ports with an
import change::

    from gophas.ml import GophasEstimator      # was: from elephas.ml_model import ElephasEstimator

    estimator = GophasEstimator(keras_model_config=model.to_json(), optimizer_config=opt_config,
                                loss="categorical_crossentropy", metrics=["accuracy"], epochs=10,
                                batch_size=32, mode="synchronous", categorical=True, nb_classes=3,
                                outputCol="prediction")
    pipeline = Pipeline(stages=[assembler, scaler, estimator])

Classifiers (cross-entropy losses) output Spark's ``probability`` vector and
``prediction`` class index; regression outputs the value as ``prediction``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLReader, JavaMLWritable
from pyspark.ml.wrapper import JavaEstimator, JavaModel

from gophas.errors import GophasError, jvm_errors

__all__ = ["GophasEstimator", "GophasModel"]

_JAVA_PACKAGE = "io.gophas.spark.ml"

# Elephas' ElephasEstimator argument names and the params they set.
_ELEPHAS_NAMES = {
    "keras_model_config": "modelSpec",
    "optimizer_config": "optimizer",
    "batch_size": "batchSize",
    "validation_split": "validationSplit",
    "num_workers": "numWorkers",
    "learning_rate": "learningRate",
    "outputCol": "predictionCol",
}


class _GophasParams(Params):
    """The params GophasEstimator and GophasModel share (the Scala stages' names)."""

    featuresCol = Param(Params._dummy(), "featuresCol", "features column: a vector, an array of numbers or a number",
                        typeConverter=TypeConverters.toString)
    labelCol = Param(Params._dummy(), "labelCol", "label column: a class index or value, or a vector of the outputs",
                     typeConverter=TypeConverters.toString)
    predictionCol = Param(Params._dummy(), "predictionCol", "prediction column: the class index or the value",
                          typeConverter=TypeConverters.toString)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "classifiers: class probabilities column; empty for none",
                           typeConverter=TypeConverters.toString)
    modelSpec = Param(Params._dummy(), "modelSpec",
                      "the network: Keras' model.to_json(), or a Gophas model.json with its compile config",
                      typeConverter=TypeConverters.toString)
    loss = Param(Params._dummy(), "loss", "Keras loss name; empty: the spec's compile config",
                 typeConverter=TypeConverters.toString)
    optimizer = Param(Params._dummy(), "optimizer",
                      "Keras optimizer: a name or its serialization as JSON; empty: the spec's, else the kernel's "
                      "default (rmsprop, as Keras compile)",
                      typeConverter=TypeConverters.toString)
    learningRate = Param(Params._dummy(), "learningRate", "the optimizer's learning rate; 0: the optimizer's own",
                         typeConverter=TypeConverters.toFloat)
    metrics = Param(Params._dummy(), "metrics", "Keras metric names; empty: the spec's compile config",
                    typeConverter=TypeConverters.toListString)
    epochs = Param(Params._dummy(), "epochs", "training epochs", typeConverter=TypeConverters.toInt)
    batchSize = Param(Params._dummy(), "batchSize", "rows per training step", typeConverter=TypeConverters.toInt)
    validationSplit = Param(Params._dummy(), "validationSplit", "fraction held out for val_ metrics each epoch",
                            typeConverter=TypeConverters.toFloat)
    numWorkers = Param(Params._dummy(), "numWorkers", "workers to repartition to; 0: the input's partitions",
                       typeConverter=TypeConverters.toInt)
    mode = Param(Params._dummy(), "mode", "synchronous, asynchronous or hogwild", typeConverter=TypeConverters.toString)
    frequency = Param(Params._dummy(), "frequency", "workers push every epoch or batch",
                      typeConverter=TypeConverters.toString)
    seed = Param(Params._dummy(), "seed", "seed of the initial weights, the shuffles and the validation split",
                 typeConverter=TypeConverters.toInt)
    verbose = Param(Params._dummy(), "verbose", "0: quiet; 1: a line per epoch; 2: also per worker",
                    typeConverter=TypeConverters.toInt)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(featuresCol="features", labelCol="label", predictionCol="prediction",
                         probabilityCol="probability", loss="", optimizer="", learningRate=0.0, metrics=[],
                         epochs=10, batchSize=32, validationSplit=0.0, numWorkers=0, mode="asynchronous",
                         frequency="epoch", seed=0, verbose=0)

    def getFeaturesCol(self) -> str:
        return self.getOrDefault(self.featuresCol)

    def getLabelCol(self) -> str:
        return self.getOrDefault(self.labelCol)

    def getPredictionCol(self) -> str:
        return self.getOrDefault(self.predictionCol)

    def getProbabilityCol(self) -> str:
        return self.getOrDefault(self.probabilityCol)

    def getModelSpec(self) -> str:
        return self.getOrDefault(self.modelSpec)

    def getLoss(self) -> str:
        return self.getOrDefault(self.loss)

    def getOptimizer(self) -> str:
        return self.getOrDefault(self.optimizer)

    def getLearningRate(self) -> float:
        return self.getOrDefault(self.learningRate)

    def getMetrics(self) -> list[str]:
        return self.getOrDefault(self.metrics)

    def getEpochs(self) -> int:
        return self.getOrDefault(self.epochs)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def getValidationSplit(self) -> float:
        return self.getOrDefault(self.validationSplit)

    def getNumWorkers(self) -> int:
        return self.getOrDefault(self.numWorkers)

    def getMode(self) -> str:
        return self.getOrDefault(self.mode)

    def getFrequency(self) -> str:
        return self.getOrDefault(self.frequency)

    def getSeed(self) -> int:
        return self.getOrDefault(self.seed)

    def getVerbose(self) -> int:
        return self.getOrDefault(self.verbose)


class _GophasReader(JavaMLReader):
    """Loads a stage saved by Python or Scala: the Java class lives in
    ``io.gophas.spark.ml``, not under ``org.apache.spark``."""

    @classmethod
    def _java_loader_class(cls, clazz: type) -> str:
        return f"{_JAVA_PACKAGE}.{clazz.__name__}"


class _GophasReadable(JavaMLReadable):
    @classmethod
    def read(cls) -> JavaMLReader:
        return _GophasReader(cls)


def _spec_json(value: Any) -> str:
    """A spec given as a JSON string, a dict or a Keras model, as JSON."""
    from gophas.network import Network, is_keras_model

    if value is None:
        return value
    if is_keras_model(value):
        return Network.from_keras(value).to_json()
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    raise GophasError(f"gophas: modelSpec must be Keras JSON (a string or dict) or a Keras model, got {type(value).__name__}")


def _optimizer_json(value: Any) -> str:
    """An optimizer given as a name, a Keras serialization dict or an optimizer object, as JSON or a name."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value)
    try:
        import keras

        return json.dumps(keras.optimizers.serialize(value))
    except Exception as e:  # not a Keras optimizer
        raise GophasError(f"gophas: optimizer must be a name, a Keras optimizer config or optimizer, "
                          f"got {type(value).__name__}: {e}") from None


class GophasEstimator(JavaEstimator, _GophasParams, _GophasReadable, JavaMLWritable):
    """Trains a Gophas network on Spark as a Spark ML Estimator.

    Parameters
    ----------
    modelSpec : str, dict or Keras model
        The network: Keras' ``model.to_json()`` (with or without a Gophas
        compile config), or a compiled Keras model (its architecture and
        compile config; training starts from weights initialized from
        ``seed``).
    loss, optimizer, learningRate, metrics
        Override the spec's compile config.
    epochs, batchSize, validationSplit, numWorkers, mode, frequency, seed, verbose
        As for :class:`gophas.SparkModel`.
    featuresCol, labelCol, predictionCol, probabilityCol
        Columns; ``probabilityCol`` is filled for classifiers.

    Elephas' names are accepted as aliases: ``keras_model_config``,
    ``optimizer_config``, ``batch_size``, ``validation_split``,
    ``num_workers``, ``learning_rate``, ``outputCol``; ``categorical`` and
    ``nb_classes`` are checked against the network (the loss and the output
    width decide how labels are read).
    """

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "label", predictionCol: str = "prediction",
                 probabilityCol: str = "probability", modelSpec: Any = None, loss: str | None = None,
                 optimizer: Any = None, learningRate: float | None = None, metrics: list[str] | None = None,
                 epochs: int | None = None, batchSize: int | None = None, validationSplit: float | None = None,
                 numWorkers: int | None = None, mode: str | None = None, frequency: str | None = None,
                 seed: int | None = None, verbose: int | None = None, keras_model_config: Any = None,
                 optimizer_config: Any = None, batch_size: int | None = None, validation_split: float | None = None,
                 num_workers: int | None = None, learning_rate: float | None = None, outputCol: str | None = None,
                 categorical: bool | None = None, nb_classes: int | None = None) -> None:
        super().__init__()
        with jvm_errors():
            self._java_obj = self._new_java_obj(f"{_JAVA_PACKAGE}.GophasEstimator", self.uid)
        self._categorical: bool | None = None
        self._nb_classes: int | None = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> "GophasEstimator":
        """Sets params by keyword, Gophas' names or Elephas' (see the class doc)."""
        kwargs = dict(kwargs)
        self._categorical = kwargs.pop("categorical", None)
        self._nb_classes = kwargs.pop("nb_classes", None)
        for elephas, name in _ELEPHAS_NAMES.items():
            if elephas in kwargs:
                value = kwargs.pop(elephas)
                if value is None:
                    continue
                if kwargs.get(name) is not None:
                    raise GophasError(f"gophas: both {elephas} and {name} are given; use one")
                kwargs[name] = value
        if kwargs.get("modelSpec") is not None:
            kwargs["modelSpec"] = _spec_json(kwargs["modelSpec"])
        if kwargs.get("optimizer") is not None:
            kwargs["optimizer"] = _optimizer_json(kwargs["optimizer"])
        for name in ("mode", "frequency"):
            allowed = ("synchronous", "asynchronous", "hogwild") if name == "mode" else ("epoch", "batch")
            if kwargs.get(name) is not None and kwargs[name] not in allowed:
                raise GophasError(f"gophas: unknown {name} {kwargs[name]!r}: use {', '.join(allowed)}")
        return self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def setModelSpec(self, value: Any) -> "GophasEstimator":
        return self._set(modelSpec=_spec_json(value))

    def setLoss(self, value: str) -> "GophasEstimator":
        return self._set(loss=value)

    def setOptimizer(self, value: Any) -> "GophasEstimator":
        return self._set(optimizer=_optimizer_json(value))

    def setLearningRate(self, value: float) -> "GophasEstimator":
        return self._set(learningRate=value)

    def setMetrics(self, value: list[str]) -> "GophasEstimator":
        return self._set(metrics=value)

    def setEpochs(self, value: int) -> "GophasEstimator":
        return self._set(epochs=value)

    def setBatchSize(self, value: int) -> "GophasEstimator":
        return self._set(batchSize=value)

    def setValidationSplit(self, value: float) -> "GophasEstimator":
        return self._set(validationSplit=value)

    def setNumWorkers(self, value: int) -> "GophasEstimator":
        return self._set(numWorkers=value)

    def setMode(self, value: str) -> "GophasEstimator":
        return self.setParams(mode=value)

    def setFrequency(self, value: str) -> "GophasEstimator":
        return self.setParams(frequency=value)

    def setSeed(self, value: int) -> "GophasEstimator":
        return self._set(seed=value)

    def setFeaturesCol(self, value: str) -> "GophasEstimator":
        return self._set(featuresCol=value)

    def setLabelCol(self, value: str) -> "GophasEstimator":
        return self._set(labelCol=value)

    def setPredictionCol(self, value: str) -> "GophasEstimator":
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> "GophasEstimator":
        return self._set(probabilityCol=value)

    # Elephas' setters.
    def set_keras_model_config(self, value: Any) -> "GophasEstimator":
        return self.setModelSpec(value)

    def set_optimizer_config(self, value: Any) -> "GophasEstimator":
        return self.setOptimizer(value)

    def _check_elephas_flags(self) -> None:
        if self._categorical is None and self._nb_classes is None:
            return
        with jvm_errors():
            self._transfer_params_to_java()
            jinfo = self._java_obj.modelInfo()
            info = {"loss": jinfo.loss(), "outputDim": jinfo.outputDim()}
            categorical = bool(jinfo.classifier())  # the kernel's word: a cross-entropy loss
        if self._categorical is not None and bool(self._categorical) != categorical:
            raise GophasError(f"gophas: categorical={self._categorical} but the loss is {info['loss']}")
        if self._nb_classes is not None and categorical and info["outputDim"] not in (self._nb_classes, 1):
            raise GophasError(f"gophas: nb_classes={self._nb_classes} but the network has {info['outputDim']} outputs")

    def _fit(self, dataset: Any) -> "GophasModel":
        self._check_elephas_flags()
        with jvm_errors():
            return super()._fit(dataset)

    def _create_model(self, java_model: Any) -> "GophasModel":
        return GophasModel(java_model)


class GophasModel(JavaModel, _GophasParams, _GophasReadable, JavaMLWritable):
    """A trained Gophas network as a Spark ML Model (see :class:`GophasEstimator`)."""

    def __init__(self, java_model: Any = None) -> None:
        super().__init__(java_model)
        if java_model is not None:
            self._transfer_params_from_java()

    def _transform(self, dataset: Any) -> Any:
        with jvm_errors():
            return super()._transform(dataset)

    def setFeaturesCol(self, value: str) -> "GophasModel":
        return self._set(featuresCol=value)

    def setPredictionCol(self, value: str) -> "GophasModel":
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> "GophasModel":
        return self._set(probabilityCol=value)

    @property
    def network(self) -> Any:
        """The trained network (:class:`gophas.Network`): spec and weights."""
        from gophas import safetensors
        from gophas.network import Network

        jnet = self._java_obj.network()
        return Network(json.loads(jnet.spec()), safetensors.loads(bytes(jnet.weights())))

    @property
    def training_stats(self) -> dict | None:
        """The parameter server's stats record at the end of the fit that
        made this model (mode, frequency, version, epoch, per-worker pushes,
        global steps, as the driver reports them), or None when unknown; it
        is saved and loaded with the model."""
        stats = self._java_obj.trainingStats()
        if stats.isEmpty():
            return None
        return json.loads(stats.get().json())

    @property
    def training_history(self) -> Any:
        """The :class:`gophas.History` of the fit that made this model, or
        None when unknown; it is saved and loaded with the model."""
        from gophas.spark_model import History

        h = self._java_obj.trainingHistory()
        if h.isEmpty():
            return None
        return History(json.loads(h.get().toJson()), {})


# PySpark maps a Java stage to its Python wrapper by the Java class name
# (PipelineModel.load imports the module "io.gophas.spark.ml"). That name
# cannot be a real package ("io" is the standard library); gophas/__init__
# registers a lazy alias under it, and this module takes its place once loaded.
sys.modules[_JAVA_PACKAGE] = sys.modules[__name__]
