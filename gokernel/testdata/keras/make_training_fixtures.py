#!/usr/bin/env python3
"""Make the Keras parity fixtures of what a fit is trained with: learning-rate
schedules, and class and sample weights in the loss and the metrics.

CI never runs this script: its outputs are committed beside it, and the Go
tests (keras_schedule_test.go, keras_weights_test.go) only read them.
Re-run it by hand, from the repo root, when a fixture must change:

    KERAS_BACKEND=jax .venv/bin/python gokernel/testdata/keras/make_training_fixtures.py [PART...]

PART is schedules or weights (default: both). Made with keras 3.15.1 on jax
0.10.2 (CPU), float32 throughout. It writes

  gokernel/testdata/keras/schedules.json
      "schedules": per schedule case, its Keras serialization ("config"),
      steps and Keras' schedule(step) at each ("rates").
      "optimizers": per optimizer with a schedule as its learning_rate, in
      the format of optimizers.json (config, params, 10 gradients, the
      parameters after 1 and after 10 optimizer.apply steps), plus
      "rates": optimizer.learning_rate before each step.
  gokernel/testdata/keras/weights.json
      Per model case: the spec, weights, one batch x, y, a sample weight per
      row (from a class_weight dict or given), and Keras' results on it: the
      loss compute_loss gives with and without the weights, evaluate's loss
      and metrics (metrics and weighted_metrics) with sample_weight, the
      weights after one train_on_batch step with sample_weight, and
      fit(..., class_weight=...) history and final weights.

Every tensor is {"name", "shape", "data"} with data a flat row-major list.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

S = keras.optimizers.schedules


def tensor(name, a):
    a = np.asarray(a, dtype=np.float32)
    return {"name": name, "shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def rng_array(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ----------------------------------------------------------------- schedules

SCHEDULE_CASES = [
    ("exponential", lambda: S.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.9)),
    ("exponential_staircase", lambda: S.ExponentialDecay(0.05, decay_steps=5, decay_rate=0.5, staircase=True)),
    ("exponential_growth", lambda: S.ExponentialDecay(1e-3, decay_steps=1000, decay_rate=1.5)),
    ("piecewise", lambda: S.PiecewiseConstantDecay([10, 25, 100], [0.1, 0.05, 0.01, 0.001])),
    ("piecewise_one", lambda: S.PiecewiseConstantDecay([3], [1.0, 0.5])),
    ("polynomial", lambda: S.PolynomialDecay(0.1, decay_steps=30)),
    ("polynomial_power", lambda: S.PolynomialDecay(0.1, decay_steps=30, end_learning_rate=0.01, power=0.5)),
    ("polynomial_cycle", lambda: S.PolynomialDecay(0.1, decay_steps=12, end_learning_rate=0.001, power=2.0, cycle=True)),
    ("inverse_time", lambda: S.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5)),
    ("inverse_time_staircase", lambda: S.InverseTimeDecay(0.2, decay_steps=3, decay_rate=1.0, staircase=True)),
    ("cosine", lambda: S.CosineDecay(0.1, decay_steps=40)),
    ("cosine_alpha", lambda: S.CosineDecay(0.05, decay_steps=25, alpha=0.1)),
    ("cosine_warmup", lambda: S.CosineDecay(0.0, decay_steps=30, warmup_target=0.1, warmup_steps=10)),
    ("cosine_warmup_alpha", lambda: S.CosineDecay(0.01, decay_steps=50, alpha=0.2, warmup_target=0.2, warmup_steps=7)),
    ("cosine_restarts", lambda: S.CosineDecayRestarts(0.1, first_decay_steps=10)),
    ("cosine_restarts_tmul1", lambda: S.CosineDecayRestarts(0.1, first_decay_steps=6, t_mul=1.0, m_mul=0.8, alpha=0.05)),
    ("cosine_restarts_mul", lambda: S.CosineDecayRestarts(0.05, first_decay_steps=5, t_mul=1.5, m_mul=0.9, alpha=0.01)),
]

# Every step up to 120, then some far ones (boundaries, restarts, the ends of
# decays and cycles).
STEPS = list(range(121)) + [149, 150, 151, 299, 300, 310, 630, 631, 999, 1000, 1001, 4321, 10000, 123456]

OPTIMIZER_CASES = [
    ("sgd_exponential", lambda: keras.optimizers.SGD(learning_rate=S.ExponentialDecay(0.1, 3, 0.8))),
    ("sgd_momentum_piecewise", lambda: keras.optimizers.SGD(learning_rate=S.PiecewiseConstantDecay([2, 5], [0.1, 0.05, 0.02]), momentum=0.9)),
    ("adam_cosine_warmup", lambda: keras.optimizers.Adam(learning_rate=S.CosineDecay(0.001, 8, warmup_target=0.01, warmup_steps=3))),
    ("adamw_polynomial", lambda: keras.optimizers.AdamW(learning_rate=S.PolynomialDecay(0.01, 6, end_learning_rate=0.001), weight_decay=0.1)),
    ("rmsprop_inverse_time", lambda: keras.optimizers.RMSprop(learning_rate=S.InverseTimeDecay(0.01, 2, 0.5))),
    ("adagrad_restarts", lambda: keras.optimizers.Adagrad(learning_rate=S.CosineDecayRestarts(0.1, 3))),
    ("sgd_clipnorm_cosine", lambda: keras.optimizers.SGD(learning_rate=S.CosineDecay(0.1, 10, alpha=0.1), clipnorm=0.5)),
]


def make_schedules():
    schedules = []
    for name, make in SCHEDULE_CASES:
        s = make()
        rates = [float(np.asarray(s(step), dtype=np.float32)) for step in STEPS]
        schedules.append({"name": name, "config": S.serialize(s), "steps": STEPS, "rates": rates})

    rng = np.random.default_rng(20261129)
    shapes = [(3, 4), (4,)]
    params0 = [rng_array(rng, s) for s in shapes]
    grads = [[rng_array(rng, s, [0.05, 1.0, 3.0, 0.5][step % 4]) for s in shapes] for step in range(10)]
    optimizers = []
    for name, make in OPTIMIZER_CASES:
        opt = make()
        variables = [keras.Variable(p.copy()) for p in params0]
        opt.build(variables)
        rates, after1 = [], None
        for step, g in enumerate(grads):
            rates.append(float(np.asarray(opt.learning_rate, dtype=np.float32)))
            opt.apply([keras.ops.convert_to_tensor(x) for x in g], variables)
            if step == 0:
                after1 = [np.array(v.numpy()) for v in variables]
        optimizers.append({
            "name": name,
            "config": keras.optimizers.serialize(opt),
            "params": [tensor(f"p{i}", p) for i, p in enumerate(params0)],
            "grads": [[tensor(f"g{i}", x) for i, x in enumerate(g)] for g in grads],
            "after1": [tensor(f"p{i}", p) for i, p in enumerate(after1)],
            "after10": [tensor(f"p{i}", np.array(v.numpy())) for i, v in enumerate(variables)],
            "rates": rates,
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "schedules": schedules, "optimizers": optimizers}


# ------------------------------------------------------------------- weights

N, D = 12, 4


def weights_of(model):
    return [tensor(f"w{i}", w) for i, w in enumerate(model.get_weights())]


def dense_softmax():
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3, activation="softmax")])


def dense_sigmoid():
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1, activation="sigmoid")])


def dense_linear():
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(6, activation="relu",
                             kernel_regularizer=keras.regularizers.L2(0.01)), keras.layers.Dense(2)])


def sparse_labels(rng):
    return rng.integers(0, 3, size=(N,)).astype(np.float32)


def onehot_labels(rng):
    return np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=(N,))]


def binary_labels(rng):
    return rng.integers(0, 2, size=(N, 1)).astype(np.float32)


def regression_targets(rng):
    return rng_array(rng, (N, 2))


# name, model, loss, metrics, weighted_metrics, targets, class_weight (or None:
# a sample weight per row is drawn)
WEIGHT_CASES = [
    ("sparse_cce_class_weight", dense_softmax, "sparse_categorical_crossentropy", ["accuracy"], ["accuracy"],
     sparse_labels, {0: 1.0, 1: 3.0, 2: 0.5}),
    ("cce_class_weight", dense_softmax, "categorical_crossentropy", ["accuracy"], ["accuracy", "mse"],
     onehot_labels, {0: 0.2, 2: 4.0}),
    ("bce_sample_weight", dense_sigmoid, "binary_crossentropy", ["binary_accuracy"], ["binary_accuracy"],
     binary_labels, None),
    ("bce_class_weight", dense_sigmoid, "binary_crossentropy", ["accuracy"], [],
     binary_labels, {0: 0.25, 1: 2.0}),
    ("mse_sample_weight", dense_linear, "mse", ["mae"], ["mae", "mse"], regression_targets, None),
    ("huber_sample_weight", dense_linear, keras.losses.Huber(), [], ["mae"], regression_targets, None),
]


def make_weights():
    cases = []
    for i, (name, build, loss, metrics, weighted, targets, class_weight) in enumerate(WEIGHT_CASES):
        keras.utils.set_random_seed(300 + i)
        rng = np.random.default_rng(300 + i)
        x = rng_array(rng, (N, D))
        y = targets(rng)
        if class_weight is None:
            sw = rng.uniform(0.0, 3.0, size=(N,)).astype(np.float32)
            sw[1] = 0.0  # a row that does not count
        else:
            from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights
            sw = np.asarray(class_weight_to_sample_weights(y, class_weight), dtype=np.float32)

        def compiled():
            model = build()
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=loss, metrics=metrics,
                          weighted_metrics=weighted)
            return model

        model = compiled()
        init = model.get_weights()
        unweighted = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
        evaluated = model.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)
        step = model.train_on_batch(x, y, sample_weight=sw, return_dict=True)
        after_step = weights_of(model)

        fitted = compiled()
        fitted.set_weights(init)
        fit_args = {"class_weight": class_weight} if class_weight is not None else {"sample_weight": sw}
        hist = fitted.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0, **fit_args)
        cases.append({
            "name": name,
            "spec": json.loads(model.to_json()),
            "weights": [tensor(f"w{i}", w) for i, w in enumerate(init)],
            "x": tensor("x", x),
            "y": tensor("y", y),
            "class_weight": {str(k): v for k, v in class_weight.items()} if class_weight is not None else None,
            "sample_weight": tensor("sample_weight", sw),
            "evaluate_unweighted": {k: float(v) for k, v in unweighted.items()},
            "evaluate": {k: float(v) for k, v in evaluated.items()},
            "train_on_batch": {k: float(v) for k, v in step.items()},
            "after_step": after_step,
            "fit_batch_size": 5,
            "fit_epochs": 2,
            "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
            "after_fit": weights_of(fitted),
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


PARTS = {"schedules": ("schedules.json", make_schedules), "weights": ("weights.json", make_weights)}


def main(argv):
    parts = argv or list(PARTS)
    for part in parts:
        out, make = PARTS[part]
        data = make()
        with open(os.path.join(HERE, out), "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1:])
