"""Elephas' MNIST MLP example, on Gophas.

The same Keras model and PySpark job an Elephas user writes; the one change
is the import (``from gophas import SparkModel`` for
``from elephas.spark_model import SparkModel``). Keras only defines the
model here: training runs in Go on the executors, so Keras' numpy backend is
enough and no TensorFlow is needed anywhere. MNIST comes from the GoMNIST
files (GOPHAS_MNIST_DIR, or --data).

    python examples/mnist_mlp/mnist_mlp.py [--epochs 10] [--workers 2]
    spark-submit --jars dist/gophas-spark-4.3_2.13-0.1.0.jar examples/mnist_mlp/mnist_mlp.py

Spark's default driver memory (1 GiB) is enough: the RDD of pairs is read
once, by the job that converts and caches it.

It prints a line per epoch, then ``Test accuracy: 0.xxxx``.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "numpy")  # Keras defines the model; Gophas trains it

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.layers import Dense, Dropout, Input  # noqa: E402
from keras.models import Sequential  # noqa: E402
from keras.optimizers import Adam  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

import gophas  # noqa: E402
from gophas import SparkModel  # noqa: E402
from gophas.datasets import mnist  # noqa: E402
from gophas.utils.rdd_utils import to_simple_rdd  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the GoMNIST data/ folder (default: $GOPHAS_MNIST_DIR)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="asynchronous")
    parser.add_argument("--frequency", default="epoch")
    parser.add_argument("--validation-split", type=float, default=0.1, help="as in Elephas' example")
    parser.add_argument("--train-rows", type=int, default=60000, help="use the first N training images")
    parser.add_argument("--master", default=None, help="Spark master when started with python (default local[2])")
    parser.add_argument("--save", help="save the trained model directory here")
    args = parser.parse_args()

    batch_size = args.batch_size
    nb_classes = 10
    epochs = args.epochs

    # The data, split between train and test sets
    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data)
    x_train = x_train[:args.train_rows].reshape(-1, 784).astype("float32") / 255
    y_train = y_train[:args.train_rows]
    x_test = x_test.reshape(10000, 784).astype("float32") / 255
    print(x_train.shape[0], "train samples")
    print(x_test.shape[0], "test samples")

    # Convert class vectors to binary class matrices
    y_train = keras.utils.to_categorical(y_train, nb_classes)
    y_test = keras.utils.to_categorical(y_test, nb_classes)

    keras.utils.set_random_seed(1)
    model = Sequential([
        Input(shape=(784,)),
        Dense(128, activation="relu"),
        Dropout(0.2),
        Dense(128, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=Adam(), loss="categorical_crossentropy", metrics=["accuracy"])

    # Under spark-submit the session exists with the jar (--jars); started
    # from python, gophas.configure puts the jar on it.
    builder = SparkSession.builder.appName("Mnist_Spark_MLP")
    if args.master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(args.master or "local[2]")
    # Spark WARN and up, its progress bar and Gophas' lines, unless your log4j2 configuration says otherwise.
    builder = gophas.readable_console(builder)
    spark = gophas.configure(builder).getOrCreate()
    sc = spark.sparkContext

    # Build RDD from numpy features and labels
    rdd = to_simple_rdd(sc, x_train, y_train)

    # Initialize SparkModel from the Keras model and its Spark context
    spark_model = SparkModel(model, frequency=args.frequency, mode=args.mode,
                             num_workers=args.workers, batch_size=batch_size)

    # Train Spark model
    start = time.time()
    spark_model.fit(rdd, epochs=epochs, batch_size=batch_size, verbose=1, validation_split=args.validation_split)
    fit_seconds = time.time() - start

    # Evaluate Spark model by evaluating the underlying model
    score = spark_model.evaluate(x_test, y_test)
    print("Test loss: %.4f" % score[0])
    print("Test accuracy: %.4f" % score[1])
    print("Time: fit %.1f s (%s, %s, %d workers)" % (fit_seconds, args.mode, args.frequency, args.workers))

    # The trained weights, back in Keras
    trained = spark_model.master_network
    agree = np.mean(trained.predict(x_test[:1000], verbose=0).argmax(axis=1) == y_test[:1000].argmax(axis=1))
    print("Keras master_network accuracy on the first 1000 test images: %.4f" % agree)
    if args.save:
        spark_model.save(args.save)
    spark.stop()


if __name__ == "__main__":
    main()
