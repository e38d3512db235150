"""The Keras MNIST convnet example, trained on Spark through Gophas from PySpark.

Keras' "Simple MNIST convnet" (Conv2D(32, 3) -> MaxPooling2D -> Conv2D(64, 3)
-> MaxPooling2D -> Flatten -> Dropout(0.5) -> Dense(10, softmax); Adam,
batch 128), built in Keras and handed to ``gophas.SparkModel`` as a user
would. The DataFrame holds each image as a flat vector of 784 values; the
workers reshape it to the model's input shape (28, 28, 1), row-major,
channels last. Keras only defines the model (its numpy backend is enough);
training runs in Go on the executors. MNIST comes from the GoMNIST files
(GOPHAS_MNIST_DIR, or --data).

    python examples/mnist_convnet/mnist_convnet.py [--epochs 12] [--workers 2]
    make example-convnet

It prints a line per epoch, then ``Test accuracy: 0.xxxx``.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "numpy")  # Keras defines the model; Gophas trains it

import keras  # noqa: E402
from keras import layers  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

import gophas  # noqa: E402
from gophas import SparkModel, to_data_frame  # noqa: E402
from gophas.datasets import mnist  # noqa: E402


def model():
    keras.utils.set_random_seed(1)
    m = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_convnet")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


def main(build=model, title="Mnist_Spark_Convnet", default_epochs=12, default_batch=128, shape=(28, 28, 1), doc=__doc__):
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", help="the GoMNIST data/ folder (default: $GOPHAS_MNIST_DIR)")
    parser.add_argument("--epochs", type=int, default=default_epochs)
    parser.add_argument("--batch-size", type=int, default=default_batch)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="asynchronous")
    parser.add_argument("--frequency", default="batch")
    parser.add_argument("--train-rows", type=int, default=60000, help="use the first N training images")
    parser.add_argument("--master", default=None, help="Spark master when started with python (default local[2])")
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data)
    x_train = x_train[:args.train_rows].reshape(-1, 784).astype("float32") / 255
    y_train = y_train[:args.train_rows].astype("int64")
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    y_test = y_test.astype("int64")
    print(x_train.shape[0], "train samples,", x_test.shape[0], "test samples")

    builder = SparkSession.builder.appName(title)
    if args.master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(args.master or "local[2]").config("spark.driver.memory", "4g")
    spark = gophas.configure(builder).getOrCreate()
    sc = spark.sparkContext
    train = to_data_frame(sc, x_train, y_train)  # features: a 784-wide vector; label: the class index
    test = to_data_frame(sc, x_test, y_test)

    keras_model = build()
    keras_model.summary()
    spark_model = SparkModel(keras_model, mode=args.mode, frequency=args.frequency,
                             num_workers=args.workers, batch_size=args.batch_size)
    start = time.time()
    spark_model.fit(train, epochs=args.epochs, verbose=1)
    fit_seconds = time.time() - start

    loss, accuracy = spark_model.evaluate(test)
    print("Test loss: %.4f" % loss)
    print("Test accuracy: %.4f" % accuracy)
    print("Time: fit %.1f s (%d epochs, %s, %s, %d workers, batch %d)" % (
        fit_seconds, args.epochs, args.mode, args.frequency, args.workers, args.batch_size))
    trained = spark_model.master_network  # the trained weights, back in Keras
    agree = (trained.predict(x_test[:1000].reshape((-1,) + shape), verbose=0).argmax(axis=1) == y_test[:1000]).mean()
    print("Keras master_network accuracy on the first 1000 test images: %.4f" % agree)
    spark.stop()


if __name__ == "__main__":
    main()
