"""Models that are not MLPs through SparkModel from Python on a real local[2]
Spark: a convnet and an LSTM trained on flat MNIST rows (784 values reshaped
to the model's input shape), token ids (array<int>, array<long>) feeding an
Embedding, a frozen base, and the errors for rows of the wrong length and
ids outside input_dim, named by column, row and value before any training."""

import numpy as np
import pytest

from gophas import GophasError, SparkModel, to_data_frame

# 3000 training rows, 2 epochs: a few seconds per model on 2 cores.
ROWS = 3000


@pytest.fixture(scope="module")
def flat_mnist(spark, mnist_arrays):
    """(train, test, x_test, y_test): features a 784-wide vector, label a class index."""
    x, y, xt, yt = mnist_arrays
    train = to_data_frame(spark.sparkContext, x[:ROWS], y[:ROWS]).repartition(2).cache()
    test = to_data_frame(spark.sparkContext, xt, yt).coalesce(2).cache()
    train.count(), test.count()
    return train, test, xt, yt


def compiled(model, lr=0.003):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def small_convnet(seed, frozen_base=False):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return compiled(keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", trainable=not frozen_base, name="base"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ], name="small_convnet"), lr=0.01)


def test_convnet_trains_on_flat_rows(spark, flat_mnist, record_property):
    train, test, xt, yt = flat_mnist
    model = small_convnet(3)
    conv_before = model.get_layer("base").get_weights()[0].copy()
    sm = SparkModel(model, frequency="batch", batch_size=32)
    h = sm.fit(train, epochs=2)
    assert h.history["loss"][-1] < h.history["loss"][0], h
    loss, acc = sm.evaluate(test)
    record_property("convnet, 3000 flat rows, 2 epochs", f"test accuracy {acc:.4f}")
    assert acc >= 0.85, f"test accuracy {acc:.4f}"

    trained = sm.master_network
    assert not np.array_equal(trained.get_layer("base").get_weights()[0], conv_before), "the convolution did not train"
    # The flat rows are the images row-major, channels last, as Keras reshapes them.
    pred = sm.predict(xt[:200])
    assert np.max(np.abs(pred - trained.predict(xt[:200].reshape(-1, 28, 28, 1), verbose=0))) <= 1e-5
    assert abs(np.mean(trained.predict(xt.reshape(-1, 28, 28, 1), verbose=0).argmax(1) == yt) - acc) < 1e-9


def test_a_frozen_base_stays_bit_identical_while_its_head_trains(spark, flat_mnist):
    train, test, _, _ = flat_mnist
    model = small_convnet(6, frozen_base=True)
    base, head = model.get_layer("base").get_weights(), model.get_layer("head").get_weights()
    sm = SparkModel(model, mode="synchronous", batch_size=32)
    sm.fit(train, epochs=1)
    trained = sm.master_network
    for got, want in zip(trained.get_layer("base").get_weights(), base):
        assert np.array_equal(got, want), "the frozen base's weights changed"
    assert not np.array_equal(trained.get_layer("head").get_weights()[0], head[0]), "the head did not train"
    assert sm.evaluate(test)[1] >= 0.5


def test_lstm_reads_flat_rows_as_a_sequence(spark, flat_mnist, record_property):
    import keras

    train, test, xt, _ = flat_mnist
    keras.backend.clear_session()
    keras.utils.set_random_seed(4)
    model = compiled(keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.LSTM(32),
        keras.layers.Dense(10, activation="softmax"),
    ], name="small_lstm"), lr=0.01)
    sm = SparkModel(model, frequency="batch", batch_size=32)
    sm.fit(train, epochs=2)
    _, acc = sm.evaluate(test)
    record_property("LSTM(32), 3000 flat rows, 2 epochs", f"test accuracy {acc:.4f}")
    assert acc >= 0.6, f"test accuracy {acc:.4f} (chance: 0.1)"
    pred = sm.predict(xt[:100])
    assert np.max(np.abs(pred - sm.master_network.predict(xt[:100].reshape(-1, 28, 28), verbose=0))) <= 1e-5


VOCAB, STEPS = 50, 10


def tokens(n, seed):
    """Sequences of ids in [0, VOCAB); the label says whether more than half are below VOCAB/2."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(n, STEPS))
    return ids, (np.sum(ids < VOCAB // 2, axis=1) > STEPS // 2).astype(np.int64)


def embedding_model():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((STEPS,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="token_classifier")
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def token_frame(spark, ids, labels, long=False, partitions=2):
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, LongType, StructField, StructType

    schema = StructType([StructField("tokens", ArrayType(LongType() if long else IntegerType(), False), False),
                         StructField("label", DoubleType(), False)])
    df = spark.createDataFrame([(list(map(int, r)), float(l)) for r, l in zip(ids, labels)], schema)
    return df.repartition(partitions) if partitions > 1 else df.coalesce(1)


def test_token_ids_feed_an_embedding(spark, record_property):
    ids, labels = tokens(3000, 1)
    tids, tlabels = tokens(1000, 2)
    train = token_frame(spark, ids, labels).cache()
    sm = SparkModel(embedding_model(), batch_size=32)
    sm.fit(train, epochs=3, features_col="tokens")
    # array<long> works as array<int> does.
    loss, acc = sm.evaluate(token_frame(spark, tids, tlabels, long=True), features_col="tokens")
    record_property("Embedding on token ids, 3000 rows, 3 epochs", f"test accuracy {acc:.4f}")
    assert acc >= 0.9, f"test accuracy {acc:.4f} (chance: about 0.6)"
    # Numpy ids travel as integers (array<long>) and predict as Keras does.
    pred = sm.predict(tids[:200])
    assert np.max(np.abs(pred - sm.master_network.predict(tids[:200].astype(np.int32), verbose=0))) <= 1e-5
    assert to_data_frame(spark.sparkContext, tids[:5], tlabels[:5]).schema["features"].dataType.simpleString() == "array<bigint>"


def test_bad_rows_are_named_before_training(spark, mnist_arrays):
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, StructField, StructType

    x, y, _, _ = mnist_arrays
    import keras

    keras.backend.clear_session()
    conv = compiled(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                                      keras.layers.Dense(10, activation="softmax")]))
    rows = [(x[i].tolist() if i != 7 else x[i][:783].tolist(), float(y[i])) for i in range(20)]
    schema = StructType([StructField("features", ArrayType(FloatType(), False), False),
                         StructField("label", DoubleType(), False)])
    df = spark.createDataFrame(rows, schema).coalesce(1)
    with pytest.raises(GophasError, match=r"features column 'features' row 7 holds 783 values; .* takes input shape "
                                          r"\(28, 28, 1\) = 784 values per row"):
        SparkModel(conv).fit(df)

    ids, labels = tokens(40, 3)
    ids[13, 4] = VOCAB  # one id past input_dim
    sm = SparkModel(embedding_model())
    with pytest.raises(GophasError, match=r"features column 'tokens' row 13 position 4: id 50 is outside \[0, 50\)"):
        sm.fit(token_frame(spark, ids, labels, partitions=1), features_col="tokens")
    short = [r[:STEPS - 1] if i == 2 else r for i, r in enumerate(ids.tolist())]
    with pytest.raises(GophasError, match=r"features column 'tokens' row 2 holds 9 values; .* takes input shape \(10,\)"):
        sm.fit(spark.createDataFrame([(r, float(l)) for r, l in zip(short, labels)], "tokens array<int>, label double")
               .coalesce(1), features_col="tokens")
    # evaluate has no check of its own: the worker refuses the id, naming the column and the row.
    with pytest.raises(GophasError, match=r"column \"tokens\" row 13 position 4: id 50 is outside \[0, 50\)"):
        sm.evaluate(token_frame(spark, ids, labels, partitions=1), features_col="tokens")
