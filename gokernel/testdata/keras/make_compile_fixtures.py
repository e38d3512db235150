#!/usr/bin/env python3
"""Make the Keras parity fixtures of the kernel's compile configs: the
losses, metrics and optimizers beyond those of make_fixtures.py.

CI never runs this script: its outputs are committed beside it, and the Go
tests only read them. Re-run it by hand when a fixture must change (keras
and jax as in python/requirements-dev.txt):

    KERAS_BACKEND=jax .venv/bin/python gokernel/testdata/keras/make_compile_fixtures.py [PART...]

PART is losses, metrics, optimizers or fit (default: all). Made with keras
3.15.1 on jax 0.10.2 (CPU), float32 throughout. It writes

  gokernel/testdata/keras/losses.json
      Per case: the loss as compile() takes it ("config": a name or
      keras.losses.serialize), targets y and outputs p (rows x width),
      Keras' loss (the batch mean) and its gradient with respect to p
      (jax.grad).
  gokernel/testdata/keras/metrics.json
      Per case: the metric as compile() takes it, batches of targets and
      outputs, Keras' result after update_state on every batch, and the
      batches' split into 4 parts (AUC over 4 partitions).
  gokernel/testdata/keras/fit_compile.json
      As fit.json (make_fixtures.py), for models compiled with the losses,
      metrics and optimizers above: Keras' History of fit(batch_size=4,
      epochs=3, shuffle=False, validation_split=0.25) on 16 rows and the
      final weights.
  gokernel/testdata/keras/optimizers_more.json
      As optimizers.json (make_fixtures.py): per optimizer case its
      serialization, parameters, 10 gradients, Keras' parameters after 1
      and 10 steps.

Every tensor is {"name", "shape", "data"} with data a flat row-major list.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.losses.losses import LossFunctionWrapper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor(name, a):
    a = np.asarray(a, dtype=np.float32)
    return {"name": name, "shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def sigmoid(z):
    return (1 / (1 + np.exp(-z))).astype(np.float32)


# ---------------------------------------------------------------------- losses

N, M = 6, 4


def loss_data(rng, kind):
    """(y, p) for a kind of loss."""
    z = rng.standard_normal((N, M)).astype(np.float32)
    onehot = np.eye(M, dtype=np.float32)[rng.integers(0, M, N)]
    if kind == "probs":
        return onehot, softmax(z)
    if kind == "logits":
        return onehot, z * 2
    if kind == "dist":  # probability targets
        return softmax(rng.standard_normal((N, M)).astype(np.float32)), softmax(z)
    if kind == "binary":
        return rng.integers(0, 2, (N, M)).astype(np.float32), sigmoid(z * 2)
    if kind == "binary_logits":
        return rng.integers(0, 2, (N, M)).astype(np.float32), z * 2
    if kind == "signs":
        return (rng.integers(0, 2, (N, M)) * 2 - 1).astype(np.float32), z
    if kind == "positive":  # counts and rates
        return rng.integers(0, 5, (N, M)).astype(np.float32), np.exp(z).astype(np.float32)
    if kind == "regression":
        y = (rng.standard_normal((N, M)) * 3).astype(np.float32)
        y[0, 0] = 0.0  # MAPE's max(|y|, eps)
        return y, (y + rng.standard_normal((N, M)) * 1.5).astype(np.float32)
    if kind == "cosine":
        y = rng.standard_normal((N, M)).astype(np.float32)
        y[1] = 0  # a zero target row
        return y, z
    raise ValueError(kind)


LOSS_CASES = [
    ("mape", lambda: "mean_absolute_percentage_error", "regression"),
    ("mape_alias", lambda: "mape", "regression"),
    ("mape_class", lambda: keras.losses.MeanAbsolutePercentageError(), "regression"),
    ("msle", lambda: "mean_squared_logarithmic_error", "positive"),
    ("msle_negative", lambda: keras.losses.MeanSquaredLogarithmicError(), "regression"),
    ("log_cosh", lambda: "log_cosh", "regression"),
    ("log_cosh_class", lambda: keras.losses.LogCosh(), "regression"),
    ("poisson", lambda: "poisson", "positive"),
    ("kl_divergence", lambda: "kl_divergence", "dist"),
    ("kl_divergence_onehot", lambda: keras.losses.KLDivergence(), "probs"),
    ("hinge_binary", lambda: "hinge", "binary"),
    ("hinge_signs", lambda: keras.losses.Hinge(), "signs"),
    ("squared_hinge_binary", lambda: "squared_hinge", "binary"),
    ("squared_hinge_signs", lambda: keras.losses.SquaredHinge(), "signs"),
    ("categorical_hinge", lambda: "categorical_hinge", "probs"),
    ("categorical_hinge_class", lambda: keras.losses.CategoricalHinge(), "logits"),
    ("cosine_similarity", lambda: keras.losses.CosineSimilarity(), "cosine"),
    ("cosine_similarity_name", lambda: "cosine_similarity", "regression"),
    ("categorical_focal", lambda: "categorical_focal_crossentropy", "probs"),
    ("categorical_focal_args", lambda: keras.losses.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.5,
                                                                                 label_smoothing=0.1), "probs"),
    ("categorical_focal_logits", lambda: keras.losses.CategoricalFocalCrossentropy(from_logits=True), "logits"),
    ("binary_focal", lambda: "binary_focal_crossentropy", "binary"),
    ("binary_focal_balanced", lambda: keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3,
                                                                           gamma=3.0, label_smoothing=0.2), "binary"),
    ("binary_focal_logits", lambda: keras.losses.BinaryFocalCrossentropy(from_logits=True), "binary_logits"),
    ("cce_label_smoothing", lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1), "probs"),
    ("cce_label_smoothing_logits", lambda: keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                                label_smoothing=0.2), "logits"),
    ("bce_label_smoothing", lambda: keras.losses.BinaryCrossentropy(label_smoothing=0.2), "binary"),
    ("bce_label_smoothing_logits", lambda: keras.losses.BinaryCrossentropy(from_logits=True,
                                                                           label_smoothing=0.1), "binary_logits"),
]


def make_losses():
    rng = np.random.default_rng(20261129)
    cases = []
    for name, make, kind in LOSS_CASES:
        spec = make()
        # compile() wraps a loss named by a string in a LossFunctionWrapper:
        # the batch mean of the per-sample values.
        loss = LossFunctionWrapper(keras.losses.get(spec)) if isinstance(spec, str) else spec
        y, p = loss_data(rng, kind)
        fn = lambda q: jax.numpy.asarray(loss(y, q))  # noqa: E731
        value = float(fn(p))
        grad = np.asarray(jax.grad(fn)(p))
        cases.append({
            "name": name,
            "config": spec if isinstance(spec, str) else keras.losses.serialize(spec),
            "y": tensor("y", y), "p": tensor("p", p),
            "loss": value, "grad": tensor("grad", grad),
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# --------------------------------------------------------------------- metrics


def metric_batches(rng, kind, batches=3, rows=7):
    """[(y, p), ...] for a kind of metric."""
    out = []
    for b in range(batches):
        if kind == "binary":  # one output, probabilities with exact bucket edges
            p = rng.random((rows, 1)).astype(np.float32)
            p[0, 0], p[1, 0] = [0.0, 1.0, 0.5, 0.25, 0.005][b:b + 2]
            y = rng.integers(0, 2, (rows, 1)).astype(np.float32)
        elif kind == "multi":  # three sigmoid outputs, multi-label targets
            p = sigmoid(rng.standard_normal((rows, 3)).astype(np.float32) * 2)
            y = rng.integers(0, 2, (rows, 3)).astype(np.float32)
        elif kind == "logits":
            p = (rng.standard_normal((rows, 1)) * 3).astype(np.float32)
            y = rng.integers(0, 2, (rows, 1)).astype(np.float32)
        elif kind == "classes":  # softmax over 6 classes, one-hot targets, a tie
            p = softmax(rng.standard_normal((rows, 6)).astype(np.float32))
            p[0, 1] = p[0, 2] = p[0].max()
            y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, rows)]
        elif kind == "sparse":
            p = softmax(rng.standard_normal((rows, 6)).astype(np.float32))
            y = rng.integers(0, 6, (rows, 1)).astype(np.float32)
        elif kind == "regression":
            y = (rng.standard_normal((rows, 2)) * 3 + 1).astype(np.float32)
            p = (y + rng.standard_normal((rows, 2))).astype(np.float32)
        else:
            raise ValueError(kind)
        out.append((y, p))
    return out


METRIC_CASES = [
    ("mape", lambda: "mape", "regression"),
    ("mape_class", lambda: keras.metrics.MeanAbsolutePercentageError(), "regression"),
    ("top_k", lambda: "top_k_categorical_accuracy", "classes"),
    ("top_k_2", lambda: keras.metrics.TopKCategoricalAccuracy(k=2), "classes"),
    ("sparse_top_k", lambda: "sparse_top_k_categorical_accuracy", "sparse"),
    ("sparse_top_k_3", lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3"), "sparse"),
    ("rmse", lambda: keras.metrics.RootMeanSquaredError(), "regression"),
    ("rmse_name", lambda: "root_mean_squared_error", "regression"),
    ("auc", lambda: "auc", "binary"),
    ("auc_class", lambda: keras.metrics.AUC(), "multi"),
    ("auc_pr", lambda: keras.metrics.AUC(curve="PR"), "binary"),
    ("auc_pr_multi", lambda: keras.metrics.AUC(curve="PR", num_thresholds=50), "multi"),
    ("auc_minoring", lambda: keras.metrics.AUC(summation_method="minoring", num_thresholds=20), "binary"),
    ("auc_majoring_pr", lambda: keras.metrics.AUC(curve="PR", summation_method="majoring"), "multi"),
    ("auc_logits", lambda: keras.metrics.AUC(from_logits=True, num_thresholds=100), "logits"),
    ("precision", lambda: "precision", "binary"),
    ("precision_threshold", lambda: keras.metrics.Precision(thresholds=0.3), "multi"),
    ("precision_top_k", lambda: keras.metrics.Precision(top_k=2), "classes"),
    ("precision_class_id", lambda: keras.metrics.Precision(class_id=1), "multi"),
    ("recall", lambda: keras.metrics.Recall(), "binary"),
    ("recall_top_k_class", lambda: keras.metrics.Recall(top_k=1, class_id=2), "classes"),
    ("r2", lambda: "r2_score", "regression"),
    ("r2_weighted", lambda: keras.metrics.R2Score(class_aggregation="variance_weighted_average"), "regression"),
    ("r2_adjusted", lambda: keras.metrics.R2Score(num_regressors=2), "regression"),
    ("f1_macro", lambda: keras.metrics.F1Score(average="macro"), "classes"),
    ("f1_micro", lambda: keras.metrics.F1Score(average="micro"), "classes"),
    ("f1_weighted", lambda: keras.metrics.F1Score(average="weighted"), "multi"),
    ("f1_threshold", lambda: keras.metrics.F1Score(average="macro", threshold=0.4), "multi"),
]


def make_metrics():
    rng = np.random.default_rng(20261201)
    cases = []
    for name, make, kind in METRIC_CASES:
        spec = make()
        metric = keras.metrics.get(spec) if isinstance(spec, str) else spec
        batches = metric_batches(rng, kind)
        for y, p in batches:
            metric.update_state(y, p)
        cases.append({
            "name": name,
            "config": spec if isinstance(spec, str) else keras.metrics.serialize(spec),
            "batches": [{"y": tensor("y", y), "p": tensor("p", p)} for y, p in batches],
            "result": float(np.asarray(metric.result())),
        })
    # AUC of 400 rows, and the same rows cut into 4 partitions of unequal sizes.
    for curve in ("ROC", "PR"):
        y = (rng.random((400, 1)) < 0.3).astype(np.float32)
        p = np.clip(y * 0.3 + rng.random((400, 1)) * 0.7, 0, 1).astype(np.float32)
        metric = keras.metrics.AUC(curve=curve)
        metric.update_state(y, p)
        cuts = [0, 37, 160, 290, 400]
        cases.append({
            "name": f"auc_{curve.lower()}_partitions",
            "config": keras.metrics.serialize(metric),
            "batches": [{"y": tensor("y", y[a:b]), "p": tensor("p", p[a:b])} for a, b in zip(cuts, cuts[1:])],
            "result": float(np.asarray(metric.result())),
            "partitions": True,
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# ------------------------------------------------------------------ optimizers

OPTIMIZER_CASES = [
    ("nadam", lambda: keras.optimizers.Nadam()),
    ("nadam_args", lambda: keras.optimizers.Nadam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5)),
    ("nadam_clipnorm", lambda: keras.optimizers.Nadam(learning_rate=0.01, clipnorm=0.5)),
    ("adamax", lambda: keras.optimizers.Adamax()),
    ("adamax_args", lambda: keras.optimizers.Adamax(learning_rate=0.02, beta_1=0.7, beta_2=0.9, epsilon=1e-6)),
    ("adamax_weight_decay", lambda: keras.optimizers.Adamax(learning_rate=0.01, weight_decay=0.1)),
    ("adadelta", lambda: keras.optimizers.Adadelta()),
    ("adadelta_args", lambda: keras.optimizers.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6)),
    ("ftrl", lambda: keras.optimizers.Ftrl()),
    ("ftrl_regularized", lambda: keras.optimizers.Ftrl(learning_rate=0.1, learning_rate_power=-0.3,
                                                       initial_accumulator_value=0.5, l1_regularization_strength=0.01,
                                                       l2_regularization_strength=0.02,
                                                       l2_shrinkage_regularization_strength=0.03, beta=0.1)),
    ("lion", lambda: keras.optimizers.Lion()),
    ("lion_args", lambda: keras.optimizers.Lion(learning_rate=0.01, beta_1=0.5, beta_2=0.9, clipvalue=0.5)),
    ("adafactor", lambda: keras.optimizers.Adafactor()),
    ("adafactor_args", lambda: keras.optimizers.Adafactor(learning_rate=0.5, beta_2_decay=-0.5, epsilon_1=1e-20,
                                                          epsilon_2=1e-2, clip_threshold=0.5)),
    ("adafactor_fixed_step", lambda: keras.optimizers.Adafactor(learning_rate=0.05, relative_step=False)),
]


def make_optimizers():
    rng = np.random.default_rng(20261130)
    # A matrix, a vector and a rank-3 tensor (Adafactor factors the last two axes).
    shapes = [(3, 4), (4,), (2, 3, 5)]
    params0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = []
    for step in range(10):
        scale = [0.05, 1.0, 3.0, 0.5][step % 4]
        g = [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
        if step == 3:
            g[1][:] = 0  # a zero gradient for the vector
        grads.append(g)
    cases = []
    for name, make in OPTIMIZER_CASES:
        opt = make()
        variables = [keras.Variable(p.copy()) for p in params0]
        after1 = None
        for step, g in enumerate(grads):
            opt.apply([keras.ops.convert_to_tensor(x) for x in g], variables)
            if step == 0:
                after1 = [np.array(v.numpy()) for v in variables]
        after10 = [np.array(v.numpy()) for v in variables]
        cases.append({
            "name": name,
            "config": keras.optimizers.serialize(opt),
            "params": [tensor(f"p{i}", p) for i, p in enumerate(params0)],
            "grads": [[tensor(f"g{i}", x) for i, x in enumerate(g)] for g in grads],
            "after1": [tensor(f"p{i}", p) for i, p in enumerate(after1)],
            "after10": [tensor(f"p{i}", p) for i, p in enumerate(after10)],
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# ------------------------------------------------------------------------- fit

def weights_of(model):
    return [tensor(w.path, w.numpy()) for w in model.weights]


FIT_CASES = [
    ("binary_focal_auc", 1, "sigmoid", lambda: keras.losses.BinaryFocalCrossentropy(label_smoothing=0.1),
     lambda: [keras.metrics.AUC(), keras.metrics.Precision(), keras.metrics.Recall(), "accuracy"],
     lambda: keras.optimizers.Adam(learning_rate=0.01), "binary"),
    ("log_cosh_regression", 2, "linear", lambda: "log_cosh",
     lambda: [keras.metrics.RootMeanSquaredError(), keras.metrics.R2Score(), "mape"],
     lambda: keras.optimizers.Nadam(learning_rate=0.01), "regression"),
    ("categorical_focal_topk", 4, "softmax", lambda: keras.losses.CategoricalFocalCrossentropy(label_smoothing=0.1),
     lambda: [keras.metrics.TopKCategoricalAccuracy(k=2), keras.metrics.F1Score(average="macro"),
              keras.metrics.AUC(curve="PR")],
     lambda: keras.optimizers.Lion(learning_rate=0.01), "classes"),
]


def make_fit():
    rows, d = 16, 5
    cases = []
    for i, (name, out, act, loss, metrics, opt, kind) in enumerate(FIT_CASES):
        keras.backend.clear_session()
        keras.utils.set_random_seed(200 + i)
        rng = np.random.default_rng(200 + i)
        x = rng.standard_normal((rows, d)).astype(np.float32)
        if kind == "binary":
            y = (x[:, :1] + 0.5 * rng.standard_normal((rows, 1)) > 0).astype(np.float32)
        elif kind == "regression":
            y = np.stack([x[:, 0] - x[:, 1], 2 + 0.5 * x[:, 2]], axis=1).astype(np.float32)
        else:
            y = np.eye(out, dtype=np.float32)[rng.integers(0, out, rows)]
        model = keras.Sequential([keras.Input(shape=(d,)), keras.layers.Dense(6, activation="tanh"),
                                  keras.layers.Dense(out, activation=act)])
        model.compile(optimizer=opt(), loss=loss(), metrics=metrics())
        init = weights_of(model)
        hist = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, validation_split=0.25, verbose=0)
        cases.append({
            "name": name,
            "spec": json.loads(model.to_json()),
            "weights": init,
            "x": tensor("x", x),
            "y": tensor("y", y),
            "batch_size": 4,
            "epochs": 3,
            "validation_split": 0.25,
            "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
            "after": weights_of(model),
        })
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


PARTS = {"losses": ("losses.json", make_losses), "metrics": ("metrics.json", make_metrics),
         "optimizers": ("optimizers_more.json", make_optimizers), "fit": ("fit_compile.json", make_fit)}


def main(parts):
    for part in parts or list(PARTS):
        file, make = PARTS[part]
        with open(os.path.join(HERE, file), "w") as f:
            json.dump(make(), f)
        print("wrote", file)


if __name__ == "__main__":
    main(sys.argv[1:])
