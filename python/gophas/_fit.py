"""The epoch loop of SparkModel.fit, driven from Python so that Python
callbacks run between the epochs (see gophas.callbacks)."""

from __future__ import annotations

import json
import math
from typing import Any

from gophas import callbacks as cbs
from gophas.context import _facade
from gophas.errors import jvm_errors


def _logs(raw: str) -> dict:
    return {k: (math.nan if v is None else float(v)) for k, v in json.loads(raw).items()}


def _dumps(logs: dict) -> str:
    return json.dumps({k: (None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else float(v))
                       for k, v in logs.items()})


def _validation_frame(spark_model: Any, data: Any, options: dict) -> Any:
    """validation_data as a DataFrame (None without)."""
    from pyspark.sql import DataFrame

    if data is None or isinstance(data, DataFrame):
        return data
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        from gophas.utils.rdd_utils import _local_frame

        x, y = data[0], data[1]
        if len(x) != len(y):
            raise ValueError(f"validation_data: {len(x)} feature rows but {len(y)} labels")
        df = _local_frame(x, y, ids=True)
        if len(data) == 3 and data[2] is not None:
            import numpy as np

            w = np.asarray(data[2], dtype=np.float64).ravel()
            if len(w) != len(x):
                raise ValueError(f"validation_data: {len(w)} sample weights for {len(x)} rows")
            col = options.get("sampleWeightCol") or "sample_weight"
            options["validationWeightCol"] = col
            weights = df.sparkSession.createDataFrame([(i, float(v)) for i, v in enumerate(w)], ["id", col])
            df = df.join(weights, "id").orderBy("id")
        if options.get("featuresCol", "features") != "features" or options.get("labelCol", "label") != "label":
            df = df.withColumnRenamed("features", options["featuresCol"]).withColumnRenamed("label", options["labelCol"])
        return df.drop("id")
    raise TypeError("validation_data must be a DataFrame or (x_val, y_val[, sample_weight_val]) numpy arrays, "
                    f"got {type(data).__name__}")


def run(spark_model: Any, df: Any, callbacks: list | None, validation_data: Any, options: dict) -> str:
    """Runs the fit; returns the history JSON (History.toJson)."""
    options = dict(options)
    freq = options.pop("validationFreq", 1)
    if isinstance(freq, bool) or not isinstance(freq, (int, list, tuple, set)):
        raise ValueError(f"validation_freq must be an int or a list of epochs, got {freq!r}")
    if isinstance(freq, int):
        if freq < 1:
            raise ValueError(f"validation_freq must be at least 1, got {freq}")
        options["validationFreq"] = freq
    else:
        options["validationEpochs"] = sorted(int(e) for e in freq)
    cw = options.pop("classWeight", None)
    if cw:
        options["classWeight"] = {str(int(k)): float(v) for k, v in dict(cw).items()}
    if not options.get("sampleWeightCol"):
        options.pop("sampleWeightCol", None)
    scala, python = cbs.translate(callbacks)
    options["callbacks"] = scala
    val = _validation_frame(spark_model, validation_data, options)
    with jvm_errors():
        jfit = _facade().fitSession(spark_model._jmodel, df._jdf, None if val is None else val._jdf, json.dumps(options))
    try:
        with jvm_errors():
            epoch = int(jfit.begin())
        model = cbs.FitModel(jfit, spark_model)
        params = {k: int(v) for k, v in json.loads(jfit.params()).items()}
        for cb in python:
            _call(cb, "set_model", model)
            _call(cb, "set_params", params)
        cbs._restore(python, jfit.resumedPythonState())
        for cb in python:
            _call(cb, "on_train_begin", {})
        logs: dict = {}
        while True:
            with jvm_errors():
                if not jfit.shouldRun(epoch):
                    break
                jfit.epochBegin(epoch)
            for cb in python:
                _call(cb, "on_epoch_begin", epoch, {})
            with jvm_errors():
                logs = _logs(jfit.runEpoch(epoch))
                logs = _logs(jfit.callbacksEpochEnd(epoch, _dumps(logs)))
            for cb in python:
                _call(cb, "on_epoch_end", epoch, logs)
            for save in json.loads(jfit.pendingSaves()):
                if save["weightsOnly"]:
                    model.save_weights(save["path"])
                else:
                    model.save(save["path"])
            cbs._warn(json.loads(jfit.warnings()))
            with jvm_errors():
                jfit.record(epoch, _dumps(logs), cbs._state(python))
            epoch += 1
        for cb in python:
            _call(cb, "on_train_end", dict(logs))
        with jvm_errors():
            raw = jfit.end()
        cbs._warn(json.loads(jfit.warnings()))
        return raw
    finally:
        jfit.close()


def _call(cb: Any, hook: str, *args: Any) -> None:
    f = getattr(cb, hook, None)
    if callable(f):
        f(*args)


def fill_histories(callbacks: list | None, history: Any) -> None:
    """Gives Keras History callbacks the fit's history, epochs and params."""
    for cb in callbacks or []:
        if type(cb).__name__ == "History" and type(cb).__module__.split(".")[0] == "keras":
            cb.history = {k: list(v) for k, v in history.history.items()}
            cb.epoch = list(history.epoch)
            cb.params = dict(history.params)
