"""One local[2] SparkSession with the Gophas jar for every test, and MNIST subsets.

Keras runs on its numpy backend: it only builds, compiles and predicts with
the models here; Gophas trains them.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "numpy")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

TRAIN_ROWS = 6000
TEST_ROWS = 2000
EPOCHS = 3
# The Scala suite's bar for the same subset, epochs and batch size (measured
# 0.8585-0.8935 there).
SUBSET_ACCURACY = 0.83


def pytest_configure(config):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    import gophas

    unpack = tmp_path_factory.mktemp("unpack")
    builder = (SparkSession.builder.master("local[2]").appName("gophas-python-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.memory", "2g")
               .config("spark.gophas.unpackDir", str(unpack)))
    session = gophas.configure(builder).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def mnist_arrays():
    from gophas.datasets import mnist

    if not os.environ.get("GOPHAS_MNIST_DIR"):
        pytest.fail("GOPHAS_MNIST_DIR is not set: run the tests through `make test-python`")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x = x_train[:TRAIN_ROWS].reshape(-1, 784).astype(np.float32) / 255
    xt = x_test[:TEST_ROWS].reshape(-1, 784).astype(np.float32) / 255
    return x, y_train[:TRAIN_ROWS].astype(np.int64), xt, y_test[:TEST_ROWS].astype(np.int64)


@pytest.fixture(scope="session")
def mnist_frames(spark, mnist_arrays):
    """(train, test) DataFrames of features (vector) and label (class index), 2 partitions, cached."""
    from gophas import to_data_frame

    x, y, xt, yt = mnist_arrays
    train = to_data_frame(spark.sparkContext, x, y).repartition(2).cache()
    test = to_data_frame(spark.sparkContext, xt, yt).coalesce(2).cache()
    train.count(), test.count()
    return train, test


def mlp(seed=1, compile=True, **compile_args):
    """The MNIST MLP of the examples, built and compiled in Keras."""
    import keras

    keras.backend.clear_session()  # the layer and optimizer names Keras gives a fresh model
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ], name="mnist_mlp")
    if compile:
        args = dict(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
        args.update(compile_args)
        model.compile(**args)
    return model


def job_ids(spark):
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup())


# Measured numbers (accuracies, seconds) that tests record with
# record_property, printed at the end of the run.
_measured = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _measured.extend(f"{report.nodeid}: {k} = {v}" for k, v in report.user_properties)


def pytest_terminal_summary(terminalreporter):
    if _measured:
        terminalreporter.section("gophas: measured")
        for line in _measured:
            terminalreporter.write_line(line)
