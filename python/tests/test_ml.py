"""gophas.ml: the Spark ML stages from Python, on the wine data in examples/data."""

import json
import os

import pytest

from conftest import ROOT

WINE_ACCURACY = 0.9  # the Scala suite's bar on the same split (measured 1.0 there)


@pytest.fixture(scope="module")
def wine(spark):
    df = spark.read.csv(os.path.join(ROOT, "examples", "data", "wine.csv"), header=True, inferSchema=True)
    train, test = df.randomSplit([0.75, 0.25], seed=42)
    return train.repartition(2).cache(), test.cache()


@pytest.fixture(scope="module")
def wine_spec():
    with open(os.path.join(ROOT, "examples", "tabular", "wine_mlp.json")) as f:
        return f.read()


def _stages(train, estimator):
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    cols = [c for c in train.columns if c != "label"]
    return [VectorAssembler(inputCols=cols, outputCol="raw"),
            StandardScaler(inputCol="raw", outputCol="features", withMean=True),
            estimator]


def _rows(df, cols=("prediction", "probability")):
    return [tuple(r) for r in df.select(*cols).collect()]


def test_pipeline_fits_and_round_trips_between_python_and_scala(spark, wine, wine_spec, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.sql import DataFrame

    from gophas.ml import GophasEstimator, GophasModel

    train, test = wine
    est = GophasEstimator(modelSpec=wine_spec, learningRate=0.01, epochs=30, batchSize=16, seed=3)
    model = Pipeline(stages=_stages(train, est)).fit(train)
    out = model.transform(test)
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(out)
    assert acc >= WINE_ACCURACY, f"wine accuracy {acc:.4f}"
    gm = model.stages[-1]
    assert isinstance(gm, GophasModel) and gm.getEpochs() == 30 and gm.getLearningRate() == 0.01
    before = _rows(out)

    path = str(tmp_path / "py-saved")
    model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    assert isinstance(loaded.stages[-1], GophasModel)
    assert _rows(loaded.transform(test)) == before
    # The fit's history and stats are saved with the model (Keras' History shape).
    h, lh = gm.training_history, loaded.stages[-1].training_history
    assert lh.history == h.history and lh.epoch == list(range(30)) and lh.params["epochs"] == 30
    assert loaded.stages[-1].training_stats == gm.training_stats and gm.training_stats["steps"] > 0

    # Python's save loads in Scala; Scala's save loads in Python.
    jmodel = spark._jvm.org.apache.spark.ml.PipelineModel.load(path)
    assert _rows(DataFrame(jmodel.transform(test._jdf), spark)) == before
    scala_path = str(tmp_path / "scala-saved")
    jmodel.write().overwrite().save(scala_path)
    from_scala = PipelineModel.load(scala_path)
    assert from_scala.stages[-1].getMode() == "asynchronous"
    assert _rows(from_scala.transform(test)) == before


def test_elephas_parameter_names_and_the_mode_that_trains(wine, wine_spec):
    from pyspark.ml import Pipeline

    from gophas.ml import GophasEstimator

    train, test = wine
    keras_json = json.dumps(json.loads(wine_spec)["model"])  # what model.to_json() gives
    est = GophasEstimator(keras_model_config=keras_json, optimizer_config={"class_name": "Adam", "config": {"learning_rate": 0.01}},
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=3, batch_size=16,
                          num_workers=2, mode="synchronous", frequency="batch", categorical=True, nb_classes=3,
                          outputCol="pred")
    model = Pipeline(stages=_stages(train, est)).fit(train)
    stats = model.stages[-1].training_stats
    assert stats["mode"] == "synchronous" and stats["frequency"] == "batch", stats
    assert len(stats["workers"]) == 2
    out = model.transform(test)
    assert "pred" in out.columns and "prediction" not in out.columns


def test_a_keras_model_is_accepted_directly(wine):
    import keras
    from pyspark.ml import Pipeline

    from gophas.ml import GophasEstimator

    train, test = wine
    km = keras.Sequential([keras.Input((13,)), keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(3, activation="softmax")])
    km.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model = Pipeline(stages=_stages(train, GophasEstimator(modelSpec=km, epochs=20, batchSize=16))).fit(train)
    probs = model.transform(test).select("probability").first()[0]
    assert len(probs) == 3 and abs(sum(probs) - 1) < 1e-5


def test_bad_columns_modes_and_flags_are_clear_errors(wine, wine_spec):
    from pyspark.ml.feature import VectorAssembler

    from gophas.errors import GophasError
    from gophas.ml import GophasEstimator

    train, _ = wine
    with pytest.raises(GophasError, match="unknown mode 'sync'"):
        GophasEstimator(modelSpec=wine_spec, mode="sync")
    est = GophasEstimator(modelSpec=wine_spec, epochs=1)
    with pytest.raises(GophasError, match="features column 'features' is not in the input"):
        est.fit(train)
    assembled = VectorAssembler(inputCols=[c for c in train.columns if c != "label"], outputCol="features").transform(train)
    with pytest.raises(GophasError, match="label column 'label' has type string"):
        est.fit(assembled.withColumn("label", assembled["label"].cast("string")))
    with pytest.raises(GophasError, match="nb_classes=4 but the network has 3 outputs"):
        GophasEstimator(modelSpec=wine_spec, nb_classes=4, epochs=1).fit(assembled)


def test_pyspark_finds_the_wrappers_by_the_scala_package_name():
    # What JavaParams._from_java does for a stage of class io.gophas.spark.ml.GophasModel.
    import subprocess
    import sys

    code = ("import sys, gophas\n"
            "assert 'pyspark.ml' not in sys.modules, 'import gophas loaded pyspark.ml'\n"
            "m = __import__('io.gophas.spark.ml', fromlist=['GophasModel'])\n"
            "print(m.GophasModel.__module__, m.GophasEstimator.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "KERAS_BACKEND": "numpy"}, cwd=os.path.join(ROOT, "python"))
    assert out.stdout.split() == ["gophas.ml", "GophasEstimator"]
