"""SparkModel from Python on a real local[2] Spark: Keras models in and out,
every mode and frequency, Elephas' data shapes, and errors as Python exceptions."""

import json
import os

import numpy as np
import pytest

from conftest import EPOCHS, ROOT, SUBSET_ACCURACY, job_ids, mlp

from gophas import GophasError, SparkModel, to_simple_rdd
from gophas.spark_model import SparkModel as SparkModelFromModule


def prediction_matrix(df, col="prediction"):
    return np.array([r[col].toArray() for r in df.select(col).collect()], dtype=np.float32)


def test_keras_model_fits_a_dataframe_and_comes_back_as_keras(spark, mnist_frames, mnist_arrays, record_property):
    import keras

    train, test = mnist_frames
    _, _, xt, yt = mnist_arrays
    assert SparkModel is SparkModelFromModule
    model = mlp()
    sm = SparkModel(model, batch_size=64)
    h = sm.fit(train, epochs=EPOCHS)
    assert list(h.history) == ["accuracy", "loss"]
    assert all(len(v) == EPOCHS for v in h.history.values()) and h.epoch == [0, 1, 2]
    assert h.history["loss"][-1] < h.history["loss"][0], h
    assert list(sm.training_histories) == ["partition-0", "partition-1"]
    assert list(sm.training_histories["partition-0"]) == ["accuracy", "loss"]
    loss, acc = sm.evaluate(test)
    record_property("Keras MLP on a DataFrame", f"test accuracy {acc:.4f}")
    assert acc >= SUBSET_ACCURACY, f"test accuracy {acc:.4f}"

    trained = sm.master_network
    assert isinstance(trained, keras.Model) and trained.name == "mnist_mlp"
    assert trained.loss == "categorical_crossentropy"
    assert not np.array_equal(trained.get_weights()[0], model.get_weights()[0]), "weights did not change"
    spark_pred = prediction_matrix(sm.predict(test))
    keras_pred = trained.predict(xt, verbose=0)
    assert np.max(np.abs(spark_pred - keras_pred)) <= 1e-5
    # Accuracy from Keras' predictions equals Gophas' evaluate.
    assert abs(np.mean(keras_pred.argmax(axis=1) == yt) - acc) < 1e-9


def test_keras_model_fits_an_rdd_of_pairs(spark, mnist_arrays, mnist_frames):
    x, y, xt, yt = mnist_arrays
    onehot = np.eye(10, dtype=np.float32)[y]
    rdd = to_simple_rdd(spark.sparkContext, x, onehot)
    sm = SparkModel(mlp(seed=2), mode="asynchronous", frequency="epoch", num_workers=2, batch_size=64)
    h = sm.fit(rdd, epochs=2, verbose=0)
    assert list(h.history) == ["accuracy", "loss"] and len(h.history["loss"]) == 2
    # Elephas' habits: evaluate and predict on numpy arrays.
    scores = sm.evaluate(xt, np.eye(10, dtype=np.float32)[yt])
    assert isinstance(scores, list) and len(scores) == 2 and scores[1] >= 0.8, scores
    assert scores == pytest.approx(list(sm.evaluate_dict(mnist_frames[1]).values()), rel=1e-9)
    pred = sm.predict(xt[:300])
    assert isinstance(pred, np.ndarray) and pred.shape == (300, 10)
    keras_pred = sm.master_network.predict(xt[:300], verbose=0)
    assert np.max(np.abs(pred - keras_pred)) <= 1e-5
    rdd_pred = np.array(sm.predict(spark.sparkContext.parallelize(list(xt[:300]), 2)).collect())
    assert np.max(np.abs(rdd_pred - pred)) == 0


@pytest.mark.parametrize("num_workers", [None, 2])
def test_rdd_of_pairs_is_read_once(spark, mnist_arrays, num_workers):
    """A fit converts an RDD of pairs once, whatever its epochs and validation
    split (each pair read again would ship the data from the driver again),
    and to_simple_rdd keeps every task small. The counting RDD is a map of
    to_simple_rdd's, so it lost its note of the features' type: the fit
    peeks at one element for it, and reads no more."""
    x, y, _, _ = mnist_arrays
    sc = spark.sparkContext
    onehot = np.eye(10, dtype=np.float32)[y]
    source = to_simple_rdd(sc, x, onehot)
    assert source.getNumPartitions() >= max(sc.defaultParallelism, x.nbytes // (8 << 20))
    sizes = source.glom().map(len).collect()
    assert sum(sizes) == len(x) and max(sizes) * (x[0].nbytes + onehot[0].nbytes) <= 9 << 20, sizes
    reads = sc.accumulator(0)

    def counted(pair):
        reads.add(1)
        return pair

    rdd = source.map(counted)
    sm = SparkModel(mlp(seed=2), num_workers=num_workers, batch_size=64)
    h = sm.fit(rdd, epochs=3, validation_split=0.2, seed=4)
    assert len(h.history["val_loss"]) == 3
    assert reads.value in (len(x), len(x) + 1), f"{reads.value} pairs read for {len(x)} rows (and one peeked at) over 3 epochs and their validation"
    assert source._gophas_features_dtype == np.float32


@pytest.mark.parametrize("mode", ["synchronous", "asynchronous", "hogwild"])
@pytest.mark.parametrize("frequency", ["epoch", "batch"])
def test_every_mode_and_frequency(spark, mnist_frames, mode, frequency, record_property):
    train, test = mnist_frames
    with open(os.path.join(ROOT, "examples", "mnist_mlp", "model.json")) as f:
        spec = json.load(f)  # a Gophas spec; the Go kernel initializes the weights from seed
    sm = SparkModel(spec, mode=mode, frequency=frequency, batch_size=64, seed=7)
    h = sm.fit(train, epochs=EPOCHS)
    assert list(h.history) == ["accuracy", "loss"] and h.history["loss"][-1] < h.history["loss"][0]
    stats = sm.server_stats
    assert (stats["mode"], stats["frequency"]) == (mode, frequency)
    assert sorted(w["worker"] for w in stats["workers"]) == ["partition-0", "partition-1"]
    assert all(w["applied"] > 0 and w["refused"] == 0 and w["duplicate"] == 0 for w in stats["workers"]), stats
    acc = sm.evaluate(test)[1]
    record_property(f"{mode}/{frequency}", f"test accuracy {acc:.4f}")
    assert acc >= SUBSET_ACCURACY, f"{mode}/{frequency}: accuracy {acc:.4f}"


def small_keras_case(name):
    """A Keras model of gokernel/testdata/keras/fit.json (whose history is
    real Keras' fit), with data shaped for it."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 5)).astype(np.float32)
    if name == "relu_softmax_cce":
        model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(7, activation="relu"),
                                  keras.layers.Dropout(0.0), keras.layers.Dense(3, activation="softmax")])
        y = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)]
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy",
                      metrics=["accuracy"])
    else:
        model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(7, activation="tanh"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        y = (x[:, 0] + x[:, 2] > 0).astype(np.float32)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                      metrics=["accuracy"])
    return model, x, y


@pytest.mark.parametrize("name", ["relu_softmax_cce", "tanh_sigmoid_bce"])
def test_history_is_shaped_like_keras_fit(spark, name):
    with open(os.path.join(ROOT, "gokernel", "testdata", "keras", "fit.json")) as f:
        keras_case = next(c for c in json.load(f)["cases"] if c["name"] == name)
    model, x, y = small_keras_case(name)
    assert model.get_compile_config()["loss"] == keras_case["spec"]["compile_config"]["loss"]
    assert model.get_compile_config()["metrics"] == keras_case["spec"]["compile_config"]["metrics"]
    rdd = to_simple_rdd(spark.sparkContext, x, y).repartition(2)
    sm = SparkModel(model, batch_size=4)
    h = sm.fit(rdd, epochs=keras_case["epochs"], validation_split=keras_case["validation_split"], seed=1)
    want = keras_case["history"]
    assert list(h.history) == list(want)
    assert {k: len(v) for k, v in h.history.items()} == {k: len(v) for k, v in want.items()}
    assert all(isinstance(v, float) and np.isfinite(v) for vs in h.history.values() for v in vs), h
    # Predictions of one output or several, against Keras' own.
    pred = sm.predict(x[:50])
    assert pred.shape == (50, model.output_shape[-1])
    assert np.max(np.abs(pred - sm.master_network.predict(x[:50], verbose=0))) <= 1e-5


def test_a_model_without_metrics_evaluates_to_a_float(spark):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    y = np.stack([x[:, 0] - x[:, 1], 0.5 * x[:, 2]], axis=1).astype(np.float32)
    sm = SparkModel(model, batch_size=16)
    before = sm.evaluate(x, y)
    h = sm.fit(to_simple_rdd(spark.sparkContext, x, y), epochs=3)
    assert list(h.history) == ["loss"]
    after = sm.evaluate(x, y)
    assert isinstance(after, float) and after < before
    keras_mse = float(np.mean((sm.master_network.predict(x, verbose=0) - y) ** 2))
    assert abs(keras_mse - after) < 1e-5


def test_invalid_arguments_are_python_errors(spark, mnist_frames):
    train, _ = mnist_frames
    with pytest.raises(ValueError, match="unknown mode 'sync': use 'synchronous', 'asynchronous', 'hogwild'"):
        SparkModel(mlp(), mode="sync")
    with pytest.raises(ValueError, match="unknown frequency 'step': use 'epoch', 'batch'"):
        SparkModel(mlp(), frequency="step")
    with pytest.raises(ValueError, match="num_workers"):
        SparkModel(mlp(), num_workers=0)
    with pytest.raises(ValueError, match="batch_size"):
        SparkModel(mlp(), batch_size=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'workers'"):
        SparkModel(mlp(), workers=2)
    with pytest.warns(UserWarning, match="parameter_server_mode is ignored"):
        SparkModel(mlp(), parameter_server_mode="http")
    sm = SparkModel(mlp())
    before = job_ids(spark)
    with pytest.raises(ValueError, match="features column 'pixels' is not in the DataFrame"):
        sm.fit(train, features_col="pixels")
    with pytest.raises(ValueError, match="label column 'digit' is not in the DataFrame"):
        sm.fit(train, label_col="digit")
    with pytest.raises(ValueError, match="features and label are the same column"):
        sm.fit(train, label_col="features")
    with pytest.raises(ValueError, match="validation_split"):
        sm.fit(train, validation_split=1.0)
    with pytest.raises(ValueError, match="features column 'pixels'"):
        sm.predict(train, features_col="pixels")
    with pytest.raises(ValueError, match="output column 'label' is already in the DataFrame"):
        sm.predict(train, output_col="label")
    assert job_ids(spark) == before


def test_an_unsupported_layer_fails_before_spark_does_any_work(spark):
    import keras

    keras.backend.clear_session()
    conv = keras.Sequential([keras.Input(shape=(4, 4, 4, 1)), keras.layers.Conv3D(2, 3), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])
    conv.compile(optimizer="adam", loss="categorical_crossentropy")
    before = job_ids(spark)
    with pytest.raises(GophasError) as e:
        SparkModel(conv)
    assert 'layer class Conv3D is not supported' in str(e.value) and '"conv3d"' in str(e.value)
    assert "py4j" not in str(e.value).lower() and "\tat " not in str(e.value)
    with pytest.raises(GophasError, match="use_ema"):
        SparkModel(mlp(optimizer=keras.optimizers.Adam(use_ema=True)))
    with pytest.raises(GophasError, match="loss_weights"):
        SparkModel(mlp(loss_weights=[1.0]))
    assert job_ids(spark) == before


def test_jvm_and_go_errors_arrive_as_gophas_error(spark, mnist_frames):
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    train, test = mnist_frames
    sm = SparkModel(mlp())
    bad_label = train.withColumn("label", F.when(F.monotonically_increasing_id() == 5, F.lit(10.0))
                                 .otherwise(F.col("label")))
    with pytest.raises(GophasError) as e:
        sm.fit(bad_label, epochs=1)
    assert "label column 'label' holds values from 0.0 to 10.0" in str(e.value) and "0 to 9" in str(e.value)
    # A NaN is found by the Go worker on the executor: its error text comes back.
    nan = test.withColumn("features", array_to_vector(F.when(F.monotonically_increasing_id() == 3,
                                                             F.array_repeat(F.lit(float("nan")), 784))
                                                      .otherwise(vector_to_array("features"))))
    with pytest.raises(GophasError) as e:
        sm.evaluate(nan)
    msg = str(e.value)
    assert "gophas worker" in msg and 'column "features" row 3 element 0: value NaN' in msg, msg
    assert "py4j" not in msg.lower() and "\tat " not in msg, msg
    # predict(df) is lazy: its errors come at the action, as PySpark raises
    # them, unless the action runs under gophas.errors.jvm_errors().
    from gophas.errors import jvm_errors

    with pytest.raises(GophasError, match="value NaN not allowed"), jvm_errors():
        sm.predict(nan).collect()
    x = np.zeros((4, 784), dtype=np.float32)
    x[2, 5] = np.nan
    with pytest.raises(GophasError, match="element 5: value NaN not allowed"):
        sm.predict(x)
    with pytest.raises(GophasError, match="runs all 3 workers at once, but the cluster has 2 task slots"):
        SparkModel(mlp(), mode="synchronous", num_workers=3).fit(train, epochs=1)
