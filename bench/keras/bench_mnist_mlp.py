#!/usr/bin/env python3
"""Seconds per epoch of an MNIST model: Gophas beside Keras on TensorFlow-CPU.

Run by `make bench-kernel` (the MLP) and `make bench-convnet` (the Keras
MNIST convnet), which make the venv (.cache/venv-bench, with tensorflow-cpu)
and build the gophas binary first:

    bench_mnist_mlp.py --gophas bin/gophas --model examples/mnist_mlp/model.json \\
        --mnist-dir DIR [--batch-sizes 64,128] [--epochs 5] [--rounds 2] [--threads 2]

Both sides train the same model spec (e.g. examples/mnist_mlp/model.json:
Adam, categorical_crossentropy, accuracy) on the same 60,000 MNIST images, read
from the same GoMNIST IDX files, with the same batch size, shuffling every
epoch, `threads` CPU threads each, and each side trains a fresh model for
`epochs` epochs in one process (`gophas train --epochs N`, Keras'
`model.fit(epochs=N)`), timed epoch by epoch from the epoch's start to its
end (data loading excluded on both sides).

Both sides are timed on the same epochs: the first epoch of a process is a
warm-up on both (Keras traces and compiles its step in it; Gophas allocates
its buffers and faults its pages in), and the table compares the medians of
the warm epochs, 2..N, over all rounds. A round runs Gophas, then Keras; the
rounds alternate so that other work on the machine weighs on both alike.
Every epoch's time is printed, so a side whose later epochs slow down shows.
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

    def epochs(self, batch, epochs):
        """Trains a fresh model for `epochs` epochs in one fit and returns
        each epoch's seconds, from its start to its end as callbacks see
        them (fit's data set-up excluded, as Gophas' epoch time excludes
        reading the files)."""
        times = []

        class Timer(self.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t)

        model = self.new_model()
        model.fit(self.x, self.y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
        return times


EPOCH = re.compile(r"^epoch (\d+)/(\d+): \d+ steps in ([0-9.]+)s$")


def gophas_epochs(binary, model_path, mnist_dir, batch, threads, epochs):
    """Runs `gophas train` for `epochs` epochs in one process and returns
    each epoch's seconds, as it reports them on stderr."""
    cmd = [binary, "train", "--model", model_path, "--data", "mnist", "--mnist-dir", mnist_dir,
           "--epochs", str(epochs), "--batch-size", str(batch), "--threads", str(threads), "--seed", "1"]
    env = dict(os.environ, GOMAXPROCS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stderr}")
    times = [float(m.group(3)) for m in (EPOCH.match(l) for l in p.stderr.splitlines()) if m]
    if len(times) != epochs:
        sys.exit(f"bench: expected {epochs} epoch lines on gophas' stderr, got:\n{p.stderr}")
    return times


def fmt(ts):
    return " ".join(f"{t:.2f}" for t in ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gophas", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--batch-sizes", default="64,128")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per process; the first is the warm-up")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--title", default="MNIST MLP 784-128-128-10")
    ap.add_argument("--target", type=float, default=0.5, help="the ratio gophas/keras to reach")
    a = ap.parse_args()
    if a.epochs < 3:
        sys.exit("bench: --epochs must be at least 3 (one warm-up epoch, then at least two timed)")
    if a.rounds < 1:
        sys.exit("bench: --rounds must be at least 1")
    load0 = os.getloadavg()[0]
    ks = KerasSide(a.model, a.mnist_dir, a.threads)
    rows = []
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        g, k = [], []  # per round, the epoch times
        for _ in range(a.rounds):
            g.append(gophas_epochs(a.gophas, a.model, a.mnist_dir, batch, a.threads, a.epochs))
            k.append(ks.epochs(batch, a.epochs))
        gw = statistics.median(t for r in g for t in r[1:])
        kw = statistics.median(t for r in k for t in r[1:])
        g1 = statistics.median(r[0] for r in g)
        rows.append((batch, gw, kw, g1, g, k))
    load1 = os.getloadavg()[0]
    print(f"{a.title}, 60000 rows, {a.threads} threads, {a.epochs} epochs per process, "
          f"{a.rounds} alternating rounds ({ks.versions}); 1-minute load {load0:.1f} at the start, {load1:.1f} at the end")
    print("warm = median of epochs 2..N over all rounds; gophas epoch 1 / warm shows whether later epochs slow down")
    print(f"{'batch':>5}  {'gophas s/epoch':>14}  {'keras s/epoch':>13}  {'gophas/keras':>12}  {'gophas epoch 1':>14}  {'warm/epoch 1':>12}")
    for batch, gw, kw, g1, _, _ in rows:
        print(f"{batch:>5}  {gw:>14.3f}  {kw:>13.3f}  {gw / kw:>12.2f}  {g1:>14.3f}  {gw / g1:>12.2f}")
    for batch, _, _, _, g, k in rows:
        for i, (gr, kr) in enumerate(zip(g, k)):
            print(f"batch {batch} round {i + 1} epochs: gophas {fmt(gr)} | keras {fmt(kr)}")
    print(f"target: gophas/keras <= {a.target:.2f}; gophas warm epochs within 5% of epoch 1. Other work on the machine skews single runs.")


if __name__ == "__main__":
    main()
