#!/usr/bin/env python3
"""Seconds per epoch of the MNIST MLP: Gophas beside Keras on TensorFlow-CPU.

Run by `make bench-kernel`, which makes the venv (.cache/venv-bench, with
tensorflow-cpu) and builds the gophas binary first:

    bench_mnist_mlp.py --gophas bin/gophas --model examples/mnist_mlp/model.json \
        --mnist-dir DIR [--batch-sizes 64,128] [--epochs 4] [--threads 2]

Both sides train the same model spec (examples/mnist_mlp/model.json: Adam,
categorical_crossentropy, accuracy) on the same 60,000 MNIST images, read
from the same GoMNIST IDX files, with the same batch size, shuffling every
epoch, `threads` CPU threads each, one after the other in this run. The first
epoch is dropped on both sides (Keras traces and compiles in it); the table
shows the median of the remaining epochs and the ratio Gophas/Keras.
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


def keras_epochs(model_path, mnist_dir, batch, epochs, threads):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    x = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype("float32") / 255
    labels = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"))
    y = np.eye(10, dtype="float32")[labels]
    with open(model_path) as f:
        spec = json.load(f)
    keras.utils.set_random_seed(1)
    model = keras.models.model_from_json(json.dumps(spec["model"]))
    c = spec["compile"]
    model.compile(optimizer=keras.optimizers.deserialize(c["optimizer"]), loss=c["loss"], metrics=c["metrics"])

    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
    return times, keras.__version__, tf.__version__


EPOCH = re.compile(r"^epoch \d+/\d+: \d+ steps in ([0-9.]+)s$")


def gophas_epochs(binary, model_path, mnist_dir, batch, epochs, threads):
    cmd = [binary, "train", "--model", model_path, "--data", "mnist", "--mnist-dir", mnist_dir,
           "--epochs", str(epochs), "--batch-size", str(batch), "--threads", str(threads), "--seed", "1"]
    env = dict(os.environ, GOMAXPROCS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stderr}")
    times = [float(m.group(1)) for m in (EPOCH.match(l) for l in p.stderr.splitlines()) if m]
    if len(times) != epochs:
        sys.exit(f"bench: expected {epochs} epoch lines on gophas' stderr, got:\n{p.stderr}")
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gophas", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--batch-sizes", default="64,128")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.epochs < 4:
        sys.exit("bench: --epochs must be at least 4 (the first is dropped, the median needs 3)")
    rows = []
    versions = ""
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        g = gophas_epochs(a.gophas, a.model, a.mnist_dir, batch, a.epochs, a.threads)
        k, kv, tv = keras_epochs(a.model, a.mnist_dir, batch, a.epochs, a.threads)
        versions = f"keras {kv}, tensorflow {tv}"
        gm, km = statistics.median(g[1:]), statistics.median(k[1:])
        rows.append((batch, gm, km, gm / km, g, k))
    print(f"MNIST MLP 784-128-128-10, 60000 rows, {a.threads} threads, median of epochs 2..{a.epochs} ({versions})")
    print(f"{'batch':>5}  {'gophas s/epoch':>14}  {'keras s/epoch':>13}  {'gophas/keras':>12}")
    for batch, gm, km, ratio, _, _ in rows:
        print(f"{batch:>5}  {gm:>14.3f}  {km:>13.3f}  {ratio:>12.2f}")
    for batch, _, _, _, g, k in rows:
        print(f"batch {batch} all epochs: gophas {' '.join(f'{t:.2f}' for t in g)}; keras {' '.join(f'{t:.2f}' for t in k)}")
    print("target: gophas/keras <= 0.50. Other work on the machine skews single runs.")


if __name__ == "__main__":
    main()
