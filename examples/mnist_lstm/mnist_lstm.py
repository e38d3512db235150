"""MNIST read row by row: an LSTM(128) over 28 steps of 28 pixels, trained on
Spark through Gophas from PySpark.

The model (LSTM(128) -> Dense(10, softmax); Adam, batch 128) is built in
Keras and handed to ``gophas.SparkModel`` as a user would. The DataFrame
holds each image as a flat vector of 784 values; the workers reshape it to
the model's input shape (28, 28): 28 time steps of one image row each.

    python examples/mnist_lstm/mnist_lstm.py [--epochs 8] [--workers 2]
    make example-lstm

It prints a line per epoch, then ``Test accuracy: 0.xxxx``.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "numpy")  # Keras defines the model; Gophas trains it
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mnist_convnet"))

import keras  # noqa: E402
from keras import layers  # noqa: E402

from mnist_convnet import main  # noqa: E402  (the same job, another model)


def model():
    keras.utils.set_random_seed(1)
    m = keras.Sequential([
        keras.Input(shape=(28, 28)),
        layers.LSTM(128),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_lstm")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


if __name__ == "__main__":
    main(build=model, title="Mnist_Spark_LSTM", default_epochs=8, shape=(28, 28), doc=__doc__)
