#!/usr/bin/env python3
"""Seconds per epoch of the MNIST sequence models: Gophas beside Keras on
TensorFlow-CPU.

Run by `make bench-seq`, which makes the venv (.cache/venv-bench, with
tensorflow-cpu) and builds the gokernel test binary first:

    bench_mnist_seq.py --gokernel-test BIN [--gokernel-dir gokernel] --mnist-dir DIR \\
        [--models lstm,transformer] [--batch 128] [--rounds 3] [--threads 2]

The models are gokernel/testdata/spec/mnist_lstm.json (each image read row
by row: 28 steps of 28 pixels, LSTM(128), Dense(10)) and
mnist_transformer.json (the rows projected to 64 values plus a learned
embedding of their position, two blocks of MultiHeadAttention (4 heads of
16), residual Adds, LayerNormalization and a feed-forward Dense(128,
relu)-Dense(64), the mean over the rows, Dense(10)), both with Adam, the
sparse cross-entropy and accuracy. Both sides train them on the same 60,000
MNIST images, read from the same GoMNIST IDX files, with the same batch
size, shuffling every epoch, `threads` CPU threads each. Gophas' epoch is
BenchmarkSeqMNISTEpoch in the gokernel test binary (one iteration, its
time less the MNIST loading it does before). After one warm-up epoch on
each side (Keras traces and compiles in its first), the sides take turns,
one epoch each per round, so that other work on the machine weighs on both
alike; the table shows the median over the rounds and the ratio
Gophas/Keras.
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
    """Compiled Keras models of the specs and the MNIST training data."""

    def __init__(self, spec_dir, mnist_dir, threads):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import numpy as np
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        self.np, self.keras = np, keras
        self.versions = f"keras {keras.__version__}, tensorflow {tf.__version__}"
        images = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz"))
        self.x = images.reshape(-1, 28, 28).astype("float32") / 255
        self.y = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz")).astype("int32")
        self.pos = np.tile(np.arange(28, dtype="int32"), (len(self.x), 1))
        self.spec_dir = spec_dir

    def new_model(self, name):
        keras = self.keras
        keras.utils.set_random_seed(1)
        with open(os.path.join(self.spec_dir, f"mnist_{name}.json")) as f:
            spec = json.load(f)
        model = keras.models.model_from_json(json.dumps(spec["model"]))
        c = spec["compile"]
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

        x = self.x if len(model.inputs) == 1 else [self.x, self.pos]
        model.fit(x, self.y, batch_size=batch, epochs=1, shuffle=True, verbose=0, callbacks=[Timer()])
        return times[0]


NS_PER_OP = re.compile(r"^BenchmarkSeqMNISTEpoch/model=(\w+)/batch=(\d+)\S*\s+\d+\s+(\d+) ns/op")


def gophas_epoch(binary, workdir, name, batch, threads):
    """Runs BenchmarkSeqMNISTEpoch for one epoch of a model and returns its
    seconds."""
    cmd = [binary, "-test.run", "^$", "-test.bench", f"^BenchmarkSeqMNISTEpoch$/^model={name}$",
           "-test.benchtime", "1x", "-test.count", "1"]
    env = dict(os.environ, GOMAXPROCS=str(threads), GOPHAS_BENCH_BATCH=str(batch))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    times = [int(m.group(3)) / 1e9 for m in (NS_PER_OP.match(l) for l in p.stdout.splitlines()) if m]
    if len(times) != 1:
        sys.exit(f"bench: expected one result line from {' '.join(cmd)}, got:\n{p.stdout}{p.stderr}")
    return times[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gokernel-test", required=True, help="the gokernel test binary (go test -c)")
    ap.add_argument("--gokernel-dir", default="gokernel", help="the gokernel package directory, where the binary runs")
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--models", default="lstm,transformer")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", type=float, default=1.0, help="the ratio gophas/keras to reach")
    a = ap.parse_args()
    if a.rounds < 3:
        sys.exit("bench: --rounds must be at least 3")
    ks = KerasSide(os.path.join(a.gokernel_dir, "testdata", "spec"), a.mnist_dir, a.threads)
    rows = []
    for name in a.models.split(","):
        model = ks.new_model(name)
        ks.epoch(model, a.batch)  # warm-up: tracing and compilation
        gophas_epoch(a.gokernel_test, a.gokernel_dir, name, a.batch, a.threads)
        g, k = [], []
        for _ in range(a.rounds):
            g.append(gophas_epoch(a.gokernel_test, a.gokernel_dir, name, a.batch, a.threads))
            k.append(ks.epoch(model, a.batch))
        gm, km = statistics.median(g), statistics.median(k)
        rows.append((name, gm, km, gm / km, g, k))
    print(f"MNIST rows as sequences, 60000 rows, batch {a.batch}, {a.threads} threads, "
          f"median of {a.rounds} alternating rounds ({ks.versions})")
    print(f"{'model':>11}  {'gophas s/epoch':>14}  {'keras s/epoch':>13}  {'gophas/keras':>12}")
    for name, gm, km, ratio, _, _ in rows:
        print(f"{name:>11}  {gm:>14.2f}  {km:>13.2f}  {ratio:>12.2f}")
    for name, _, _, _, g, k in rows:
        print(f"{name} all rounds: gophas {' '.join(f'{t:.2f}' for t in g)}; keras {' '.join(f'{t:.2f}' for t in k)}")
    print(f"target: gophas/keras <= {a.target:.2f}. Other work on the machine skews single runs.")


if __name__ == "__main__":
    main()
