#!/usr/bin/env python3
"""Seconds per epoch of an MNIST model: Gophas beside Keras on TensorFlow-CPU.

Run by `make bench-kernel` (the MLP) and `make bench-convnet` (the Keras
MNIST convnet), which make the venv (.cache/venv-bench, with tensorflow-cpu)
and build the gophas binary first:

    bench_mnist_mlp.py --gophas bin/gophas --model examples/mnist_mlp/model.json \
        --mnist-dir DIR [--batch-sizes 64,128] [--epochs 4] [--threads 2]

Both sides train the same model spec (examples/mnist_mlp/model.json: Adam,
categorical_crossentropy, accuracy) on the same 60,000 MNIST images, read
from the same GoMNIST IDX files, with the same batch size, shuffling every
epoch, `threads` CPU threads each. After one warm-up epoch on each side
(Keras traces and compiles in its first), the sides take turns, one epoch
each per round, so that other work on the machine weighs on both alike; the
table shows the median over the rounds and the ratio Gophas/Keras.
"""

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import time


def read_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class KerasSide:
    """A compiled Keras model of the spec and the MNIST training data."""

    def __init__(self, model_path, mnist_dir, threads):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import numpy as np
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        self.keras = keras
        self.versions = f"keras {keras.__version__}, tensorflow {tf.__version__}"
        self.x = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype("float32") / 255
        labels = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"))
        self.y = np.eye(10, dtype="float32")[labels]
        with open(model_path) as f:
            self.spec = json.load(f)

    def new_model(self):
        keras = self.keras
        keras.utils.set_random_seed(1)
        model = keras.models.model_from_json(json.dumps(self.spec["model"]))
        # The images as the model takes them: (784,) or (28, 28, 1).
        self.x = self.x.reshape((-1,) + tuple(model.input_shape[1:]))
        c = self.spec["compile"]
        model.compile(optimizer=keras.optimizers.deserialize(c["optimizer"]), loss=c["loss"], metrics=c["metrics"])
        return model

    def epoch(self, model, batch):
        """Trains one epoch and returns its seconds, from the epoch's start
        to its end as callbacks see them (fit's data set-up excluded, as
        Gophas' epoch time excludes reading the files)."""
        times = []

        class Timer(self.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t)

        model.fit(self.x, self.y, batch_size=batch, epochs=1, shuffle=True, verbose=0, callbacks=[Timer()])
        return times[0]


EPOCH = re.compile(r"^epoch \d+/\d+: \d+ steps in ([0-9.]+)s$")


def gophas_epoch(binary, model_path, mnist_dir, batch, threads):
    """Runs `gophas train` for one epoch and returns the epoch's seconds."""
    cmd = [binary, "train", "--model", model_path, "--data", "mnist", "--mnist-dir", mnist_dir,
           "--epochs", "1", "--batch-size", str(batch), "--threads", str(threads), "--seed", "1"]
    env = dict(os.environ, GOMAXPROCS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stderr}")
    times = [float(m.group(1)) for m in (EPOCH.match(l) for l in p.stderr.splitlines()) if m]
    if len(times) != 1:
        sys.exit(f"bench: expected one epoch line on gophas' stderr, got:\n{p.stderr}")
    return times[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gophas", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--batch-sizes", default="64,128")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--title", default="MNIST MLP 784-128-128-10")
    ap.add_argument("--target", type=float, default=0.5, help="the ratio gophas/keras to reach")
    a = ap.parse_args()
    if a.rounds < 3:
        sys.exit("bench: --rounds must be at least 3")
    ks = KerasSide(a.model, a.mnist_dir, a.threads)
    rows = []
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        model = ks.new_model()
        ks.epoch(model, batch)  # warm-up: tracing and compilation
        gophas_epoch(a.gophas, a.model, a.mnist_dir, batch, a.threads)
        g, k = [], []
        for _ in range(a.rounds):
            g.append(gophas_epoch(a.gophas, a.model, a.mnist_dir, batch, a.threads))
            k.append(ks.epoch(model, batch))
        gm, km = statistics.median(g), statistics.median(k)
        rows.append((batch, gm, km, gm / km, g, k))
    versions = ks.versions
    print(f"{a.title}, 60000 rows, {a.threads} threads, median of {a.rounds} alternating rounds ({versions})")
    print(f"{'batch':>5}  {'gophas s/epoch':>14}  {'keras s/epoch':>13}  {'gophas/keras':>12}")
    for batch, gm, km, ratio, _, _ in rows:
        print(f"{batch:>5}  {gm:>14.3f}  {km:>13.3f}  {ratio:>12.2f}")
    for batch, _, _, _, g, k in rows:
        print(f"batch {batch} all rounds: gophas {' '.join(f'{t:.2f}' for t in g)}; keras {' '.join(f'{t:.2f}' for t in k)}")
    print(f"target: gophas/keras <= {a.target:.2f}. Other work on the machine skews single runs.")


if __name__ == "__main__":
    main()
