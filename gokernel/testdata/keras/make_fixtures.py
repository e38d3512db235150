#!/usr/bin/env python3
"""Make the Keras parity fixtures that gokernel's keras_*_test.go read.

CI never runs this script: its outputs are committed beside it, and the Go
tests only read them. Re-run it by hand when a fixture must change:

    python3 -m venv /tmp/kerasvenv
    /tmp/kerasvenv/bin/pip install keras "jax[cpu]"
    KERAS_BACKEND=jax /tmp/kerasvenv/bin/python \
        gokernel/testdata/keras/make_fixtures.py [PART...]  # from the repo root

PART is optimizers, models, fit or mnist (default: all of them).

Made with keras 3.15.1 on jax 0.10.2 (CPU), float32 throughout. It writes

  gokernel/testdata/keras/optimizers.json
      For each optimizer case: its Keras serialization ("config"), fixed
      parameters, 10 fixed gradients, and Keras' parameters after 1 and after
      10 optimizer.apply steps.
  gokernel/testdata/keras/models.json
      For each small model: its spec ({"model": model.to_json() without its
      compile_config, "compile": {"optimizer", "loss", "metrics"}}), initial
      weights (get_weights order), one batch x, y, Keras' forward output
      (predict) and, per optimizer, the spec as the compiled model's plain
      to_json() (compile_config inside), Keras' weights after 1 and after 10
      train_on_batch steps and the losses train_on_batch returned.
  gokernel/testdata/keras/fit.json
      For two small models: Keras' History and final weights after
      fit(x, y, batch_size=4, epochs=3, shuffle=False, validation_split=0.25)
      on 8 rows (6 train in batches of 4 and 2, 2 validate).
  examples/mnist_mlp/model.json
      The MNIST MLP 784-128(relu)-Dropout(0.2)-128(relu)-Dropout(0.2)-
      10(softmax) with Adam, categorical_crossentropy and accuracy.

Every tensor is {"name", "shape", "data"} with data a flat row-major list.
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def tensor(name, a):
    a = np.asarray(a, dtype=np.float32)
    return {"name": name, "shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def rng_array(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- optimizers

OPTIMIZER_CASES = [
    ("sgd", lambda: keras.optimizers.SGD()),
    ("sgd_lr", lambda: keras.optimizers.SGD(learning_rate=0.1)),
    ("sgd_momentum", lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)),
    ("sgd_nesterov", lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay", lambda: keras.optimizers.SGD(learning_rate=0.1, weight_decay=0.05)),
    ("sgd_clipnorm", lambda: keras.optimizers.SGD(learning_rate=0.1, clipnorm=0.5)),
    ("sgd_global_clipnorm", lambda: keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=1.0)),
    ("sgd_clipvalue", lambda: keras.optimizers.SGD(learning_rate=0.1, clipvalue=0.2)),
    ("adam", lambda: keras.optimizers.Adam()),
    ("adam_lr_betas", lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5)),
    ("adam_amsgrad", lambda: keras.optimizers.Adam(learning_rate=0.01, amsgrad=True)),
    ("adam_clipnorm", lambda: keras.optimizers.Adam(learning_rate=0.01, clipnorm=0.5)),
    ("adam_global_clipnorm", lambda: keras.optimizers.Adam(learning_rate=0.01, global_clipnorm=1.0)),
    ("adam_clipvalue", lambda: keras.optimizers.Adam(learning_rate=0.01, clipvalue=0.1)),
    ("adamw", lambda: keras.optimizers.AdamW()),
    ("adamw_strong", lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", lambda: keras.optimizers.RMSprop()),
    ("rmsprop_momentum", lambda: keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.9)),
    ("rmsprop_centered", lambda: keras.optimizers.RMSprop(learning_rate=0.01, centered=True)),
    ("rmsprop_centered_momentum", lambda: keras.optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True, epsilon=1e-6)),
    ("adagrad", lambda: keras.optimizers.Adagrad()),
    ("adagrad_lr", lambda: keras.optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-5)),
    ("adagrad_clipvalue", lambda: keras.optimizers.Adagrad(learning_rate=0.1, clipvalue=0.3)),
]


def make_optimizers():
    rng = np.random.default_rng(20240601)
    shapes = [(3, 4), (4,)]
    params0 = [rng_array(rng, s) for s in shapes]
    grads = []
    for step in range(10):
        # Magnitudes vary by step, and step 3 has a zero gradient for the
        # bias, so clipping and the accumulators see both large and small
        # values.
        scale = [0.05, 1.0, 3.0, 0.5][step % 4]
        g = [rng_array(rng, s, scale) for s in shapes]
        if step == 3:
            g[1][:] = 0
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


# -------------------------------------------------------------------- models

N, D = 8, 5  # batch size and input features


def mlp(hidden_activation, out_units, out_activation, dropout=False, activation_layer=None):
    keras.backend.clear_session()  # stable layer and weight names
    layers = [keras.Input(shape=(D,)), keras.layers.Dense(7, activation=hidden_activation)]
    if activation_layer:
        layers.append(keras.layers.Activation(activation_layer))
    if dropout:
        layers.append(keras.layers.Dropout(0.0))
    layers.append(keras.layers.Dense(out_units, activation=out_activation))
    return keras.Sequential(layers)


def flatten_mlp():
    keras.backend.clear_session()
    return keras.Sequential([
        keras.Input(shape=(1, D)),
        keras.layers.Flatten(),
        keras.layers.Dense(7, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01)),
        keras.layers.Dense(3, activation="softmax", use_bias=False),
    ])


def onehot(rng, k):
    return np.eye(k, dtype=np.float32)[rng.integers(0, k, N)]


MODEL_CASES = [
    # name, builder, loss, metrics, targets
    ("relu_softmax_cce", lambda: mlp("relu", 3, "softmax", dropout=True),
     "categorical_crossentropy", ["accuracy"], lambda r: onehot(r, 3)),
    ("tanh_sigmoid_bce", lambda: mlp("tanh", 1, "sigmoid"),
     "binary_crossentropy", ["accuracy"], lambda r: r.integers(0, 2, (N, 1)).astype(np.float32)),
    ("elu_logits_bce", lambda: mlp("elu", 1, "linear"),
     keras.losses.BinaryCrossentropy(from_logits=True), [],
     lambda r: r.integers(0, 2, (N, 1)).astype(np.float32)),
    ("selu_linear_mse", lambda: mlp("selu", 2, "linear"),
     "mean_squared_error", [], lambda r: rng_array(r, (N, 2))),
    ("gelu_linear_mae", lambda: mlp("gelu", 2, None),
     "mean_absolute_error", [], lambda r: rng_array(r, (N, 2))),
    ("softplus_linear_huber", lambda: mlp("softplus", 2, "linear"),
     "huber", [], lambda r: rng_array(r, (N, 2), 2.0)),
    ("leaky_relu_softmax_scce", lambda: mlp("leaky_relu", 3, "softmax"),
     "sparse_categorical_crossentropy", ["accuracy"],
     lambda r: r.integers(0, 3, (N,)).astype(np.float32)),
    ("flatten_l2_nobias_cce", flatten_mlp,
     "categorical_crossentropy", ["accuracy"], lambda r: onehot(r, 3)),
    ("sigmoid_activation_logits_cce", lambda: mlp("sigmoid", 3, "linear", activation_layer="tanh"),
     keras.losses.CategoricalCrossentropy(from_logits=True), [], lambda r: onehot(r, 3)),
]

MODEL_OPTIMIZERS = [
    ("sgd_momentum", lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)),
    ("adam", lambda: keras.optimizers.Adam(learning_rate=0.01)),
    ("adamw", lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05)),
    ("rmsprop", lambda: keras.optimizers.RMSprop(learning_rate=0.01)),
    ("adagrad", lambda: keras.optimizers.Adagrad(learning_rate=0.1)),
    ("sgd_nesterov_clipnorm", lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.8, nesterov=True, clipnorm=0.3)),
    ("adam_amsgrad_global_clipnorm", lambda: keras.optimizers.Adam(learning_rate=0.02, amsgrad=True, global_clipnorm=0.5)),
    ("rmsprop_centered_momentum_clipvalue", lambda: keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True, clipvalue=0.05)),
]


def weights_of(model):
    return [tensor(v.path, v.numpy()) for v in model.weights]


def spec_of(model):
    """The {"model", "compile"} form: model.to_json() without its
    compile_config, and the optimizer, loss and metrics of compile."""
    model_json = json.loads(model.to_json())
    cc = model_json.pop("compile_config")
    return {"model": model_json,
            "compile": {k: cc[k] for k in ("optimizer", "loss", "metrics")}}


def make_models():
    cases = []
    for i, (name, build, loss, metrics, targets) in enumerate(MODEL_CASES):
        keras.utils.set_random_seed(100 + i)
        rng = np.random.default_rng(100 + i)
        x = rng_array(rng, (N, D))
        y = targets(rng)
        model = build()
        x = x.reshape((N,) + tuple(model.input_shape[1:]))
        init = model.get_weights()
        model.compile(optimizer=MODEL_OPTIMIZERS[0][1](), loss=loss, metrics=metrics)
        forward = model.predict(x, batch_size=N, verbose=0)
        case = {
            "name": name,
            "spec": spec_of(model),
            "weights": weights_of(model),
            "x": tensor("x", x),
            "y": tensor("y", y),
            "forward": tensor("forward", forward),
            "train": [],
        }
        for oname, make_opt in MODEL_OPTIMIZERS:
            model = build()
            model.set_weights(init)
            model.compile(optimizer=make_opt(), loss=loss, metrics=metrics)
            losses, after1 = [], None
            for step in range(10):
                out = model.train_on_batch(x, y, return_dict=True)
                losses.append(float(out["loss"]))
                if step == 0:
                    after1 = weights_of(model)
            case["train"].append({
                "optimizer": oname,
                "spec": json.loads(model.to_json()),  # compile_config inside
                "losses": losses,
                "after1": after1,
                "after10": weights_of(model),
            })
        cases.append(case)
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


FIT_CASES = ["relu_softmax_cce", "tanh_sigmoid_bce"]


def make_fit():
    cases = []
    for i, (name, build, loss, metrics, targets) in enumerate(MODEL_CASES):
        if name not in FIT_CASES:
            continue
        keras.utils.set_random_seed(100 + i)
        rng = np.random.default_rng(100 + i)
        x = rng_array(rng, (N, D))
        y = targets(rng)
        model = build()
        x = x.reshape((N,) + tuple(model.input_shape[1:]))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=loss, metrics=metrics)
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


def make_mnist_mlp():
    keras.backend.clear_session()
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ], name="mnist_mlp")
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return spec_of(model)


def write(path, obj, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    import sys
    parts = sys.argv[1:] or ["optimizers", "models", "fit", "mnist"]
    if "optimizers" in parts:
        write(os.path.join(HERE, "optimizers.json"), make_optimizers())
    if "models" in parts:
        write(os.path.join(HERE, "models.json"), make_models())
    if "fit" in parts:
        write(os.path.join(HERE, "fit.json"), make_fit())
    if "mnist" in parts:
        write(os.path.join(ROOT, "examples", "mnist_mlp", "model.json"), make_mnist_mlp(), indent=2)
