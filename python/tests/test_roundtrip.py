"""Models saved in Python load in Scala, and models saved in Scala load in
Python, with the same predictions. The Scala side is driven through py4j."""

import numpy as np

from conftest import mlp

from gophas import Network, SparkModel, load_spark_model, safetensors


def scala_predictions(spark, jmodel, df):
    from pyspark.sql import DataFrame

    out = DataFrame(jmodel.predict(df._jdf, "prediction", "features"), spark)
    return np.array([r["prediction"].toArray() for r in out.select("prediction").collect()], dtype=np.float32)


def python_predictions(sm, df):
    return np.array([r["prediction"].toArray() for r in sm.predict(df).select("prediction").collect()],
                    dtype=np.float32)


def scala_load(spark, path):
    jvm = spark.sparkContext._jvm
    net = jvm.io.gophas.spark.GophasNetwork.load(path)
    return jvm.io.gophas.spark.SparkModel(net, "asynchronous", "epoch", 0, 32)


def test_python_saves_scala_loads(spark, mnist_frames, mnist_arrays, tmp_path):
    train, test = mnist_frames
    _, _, xt, _ = mnist_arrays
    model = mlp(seed=11)
    # The pure-Python writer (no JVM): a Keras model as a model directory.
    Network.from_keras(model).save(str(tmp_path / "from-keras"))
    from_keras = scala_predictions(spark, scala_load(spark, str(tmp_path / "from-keras")), test)
    assert np.max(np.abs(from_keras - model.predict(xt, verbose=0))) <= 1e-5

    # A trained SparkModel saved from Python.
    sm = SparkModel(model, batch_size=64)
    sm.fit(train, epochs=1)
    sm.save(str(tmp_path / "trained"))
    mine = python_predictions(sm, test)
    theirs = scala_predictions(spark, scala_load(spark, str(tmp_path / "trained")), test)
    assert np.array_equal(mine, theirs)


def test_scala_saves_python_loads(spark, mnist_frames, mnist_arrays, tmp_path):
    import keras

    train, test = mnist_frames
    _, _, xt, _ = mnist_arrays
    jvm = spark.sparkContext._jvm
    with open(__import__("os").path.join(__import__("conftest").ROOT, "examples", "mnist_mlp", "model.json")) as f:
        spec = f.read()
    net = jvm.io.gophas.spark.python.PythonGophas.network(spec, None, 5)
    jmodel = jvm.io.gophas.spark.SparkModel(net, "asynchronous", "epoch", 0, 64)
    jmodel.fit(train._jdf, 1, 64, 0.0, 0, "features", "label", 0)
    path = str(tmp_path / "scala")
    jmodel.save(path)
    theirs = scala_predictions(spark, jmodel, test)

    loaded = load_spark_model(path)
    assert np.array_equal(python_predictions(loaded, test), theirs)
    # The Go-written weights read in Python, into Keras.
    with open(tmp_path / "scala" / "model.safetensors", "rb") as f:
        names = [k for k, _ in safetensors.loads(f.read())]
    assert names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"]
    as_keras = Network.load(path).to_keras()
    assert isinstance(as_keras, keras.Model)
    assert np.max(np.abs(as_keras.predict(xt, verbose=0) - theirs)) <= 1e-5
    assert np.max(np.abs(loaded.master_network.predict(xt, verbose=0) - theirs)) <= 1e-5


def test_network_save_that_fails_leaves_the_previous_files(tmp_path):
    """A write that fails halfway (here the file-size limit, as a full disk
    would) leaves the model directory as it was, with no temporary file."""
    import os
    import resource
    import signal

    import pytest

    from gophas import GophasError

    first, second = Network.from_keras(mlp(seed=1)), Network.from_keras(mlp(seed=2))
    path = str(tmp_path / "model")
    first.save(path)
    before = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path)}
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limit[1]))
        with pytest.raises(GophasError, match="files that were there are unchanged"):
            second.save(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    after = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path)}
    assert after == before
    second.save(path)
    assert Network.load(path).weight_bytes() == second.weight_bytes()
    assert sorted(os.listdir(path)) == ["model.json", "model.safetensors"]
