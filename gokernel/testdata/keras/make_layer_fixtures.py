#!/usr/bin/env python3
"""Make the Keras parity fixtures of the layer kinds and graphs that
gokernel's keras_layers_test.go reads.

CI never runs this script: its outputs are committed beside it, and the Go
tests only read them. Re-run it by hand when a fixture must change (from the
repository root, with the repository's .venv):

    KERAS_BACKEND=jax .venv/bin/python \\
        gokernel/testdata/keras/make_layer_fixtures.py [PART...]

PART is layers, graphs or convnet (default: all three). convnet writes
examples/mnist_convnet/model.json: the Keras MNIST convnet example
(keras.io/examples/vision/mnist_convnet) compiled with Adam,
categorical_crossentropy and accuracy, for the benchmark and examples.

Made with keras 3.15.1 on the jax 0.10.2 backend (CPU), float32 throughout.
Each case is a small model (batch 4) and writes

    name, spec           {"model": model.to_json() without its compile_config,
                          "compile": {"optimizer", "loss", "loss_weights",
                          "metrics"}}
    weights              the initial weights (get_weights order, named by path)
    trainable            per weight: is it a trainable variable
    x, y                 a list with one tensor per model input, per output
    forward              Keras' outputs in inference mode (model(x, training=False))
    forward_train        ... and in training mode (model(x, training=True)), or
                         forward_train_same: true when they are the same
    loss                 the training-mode loss at the initial weights
    grads                its gradients (jax.grad of compute_loss_and_updates)
                         with respect to the trainable variables, in order
    dx                   ... and with respect to each model input
    train                per optimizer: the losses train_on_batch returned over
                         10 steps (with metrics or several outputs, every
                         log it returned, keyed as Keras keys them), and every
                         weight after 1 and after 10 steps (omitted for a
                         case whose training is random)

Every tensor is {"name", "shape", "data"} with data a flat row-major list.
The Go tests compare forward outputs within 1e-5, gradients, losses and
weights within 1e-4 (relative, absolute below 1).
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as L  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
N = 4  # batch (2 for the convolution and pooling cases)


def tensor(name, a):
    """A tensor with each value written as the shortest decimal that reads
    back as the same float32."""
    a = np.asarray(a, dtype=np.float32)
    return {"name": name, "shape": list(a.shape),
            "data": [float(np.format_float_positional(v, unique=True, trim="0")) for v in a.ravel()]}


OPTIMIZERS = [
    ("sgd_momentum", lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)),
    ("adam", lambda: keras.optimizers.Adam(learning_rate=0.01)),
]


def as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def shapes(v):
    """model.input_shape or output_shape as a list of shapes."""
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)):
        return list(v)
    if isinstance(v, dict):
        return list(v.values())
    return [v]


def spec_of(model):
    model_json = json.loads(model.to_json())
    cc = model_json.pop("compile_config")
    return {"model": model_json,
            "compile": {k: cc[k] for k in ("optimizer", "loss", "loss_weights", "metrics")}}


def weights_of(model):
    return [tensor(v.path, v.numpy()) for v in model.weights]


def inputs_for(model, rng, n, scale=1.0):
    return [(rng.standard_normal((n,) + tuple(s[1:])) * scale).astype(np.float32)
            for s in shapes(model.input_shape)]


def targets_for(model, rng, n):
    return [rng.standard_normal((n,) + tuple(s[1:])).astype(np.float32)
            for s in shapes(model.output_shape)]


def grads_of(model, x, y):
    """The training-mode loss and its gradients with respect to the
    trainable variables and the inputs, at the model's current weights."""
    model.optimizer.build(model.trainable_variables)
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    mv = [v.value for v in model.metrics_variables]
    ov = [v.value for v in model.optimizer.variables]
    xin = x if len(x) > 1 else x[0]
    yin = y if len(y) > 1 else y[0]

    def f(tv, xs):
        loss, _ = model.compute_loss_and_updates(
            tv, ntv, mv, xs, yin, None, training=True, optimizer_variables=ov)
        return loss

    loss, (g, gx) = jax.value_and_grad(f, argnums=(0, 1))(tv, xin)
    return float(loss), [np.asarray(a) for a in g], [np.asarray(a) for a in as_list(gx)]


def make_case(name, build, loss="mse", loss_weights=None, metrics=None, seed=0,
              random_training=False, x_scale=1.0, targets=None, n=N, optimizers=OPTIMIZERS):
    keras.utils.set_random_seed(1000 + seed)
    rng = np.random.default_rng(1000 + seed)
    keras.backend.clear_session()
    model = build()
    x = inputs_for(model, rng, n, x_scale)
    y = targets(model, rng) if targets else targets_for(model, rng, n)
    init = model.get_weights()
    model.compile(optimizer=OPTIMIZERS[0][1](), loss=loss, loss_weights=loss_weights, metrics=metrics)
    xin = x if len(x) > 1 else x[0]
    case = {
        "name": name,
        "spec": spec_of(model),
        "weights": weights_of(model),
        "trainable": [any(v is t for t in model.trainable_variables) for v in model.weights],
        "x": [tensor(f"x{i}", a) for i, a in enumerate(x)],
        "y": [tensor(f"y{i}", a) for i, a in enumerate(y)],
        "forward": [tensor(f"out{i}", a) for i, a in enumerate(as_list(model(xin, training=False)))],
    }
    if not random_training:
        train = [np.asarray(a) for a in as_list(model(xin, training=True))]
        if all(np.array_equal(a, b) for a, b in zip(train, as_list(model(xin, training=False)))):
            case["forward_train_same"] = True
        else:
            case["forward_train"] = [tensor(f"out{i}", a) for i, a in enumerate(train)]
        loss_v, g, gx = grads_of(model, x, y)
        case["loss"] = loss_v
        case["grads"] = [tensor(v.path, a) for v, a in zip(model.trainable_variables, g)]
        case["dx"] = [tensor(f"dx{i}", a) for i, a in enumerate(gx)]
        case["train"] = []
        for oname, make_opt in optimizers:
            keras.backend.clear_session()
            model = build()
            model.set_weights(init)
            model.compile(optimizer=make_opt(), loss=loss, loss_weights=loss_weights, metrics=metrics)
            losses, logs, after1 = [], [], None
            for step in range(10):
                out = model.train_on_batch(xin, y if len(y) > 1 else y[0], return_dict=True)
                losses.append(float(out["loss"]))
                logs.append({k: float(v) for k, v in out.items()})
                if step == 0:
                    after1 = weights_of(model)
            case["train"].append({"optimizer": oname, "config": keras.optimizers.serialize(model.optimizer),
                                  "losses": losses, "after1": after1, "after10": weights_of(model)})
            if len(logs[0]) > 1:
                case["train"][-1]["logs"] = logs
    return case


def seq(input_shape, *layers):
    return lambda: keras.Sequential([keras.Input(input_shape)] + [l() for l in layers])


# ------------------------------------------------------------------ layers

def dense_rank3():
    return keras.Sequential([keras.Input((3, 5)),
                             L.Dense(4, activation="tanh", bias_initializer="random_normal"),
                             L.Dense(2, use_bias=False, kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02))])


def merge_model(cls, n, shape=(3, 5), **kw):
    def build():
        ins = [keras.Input(shape, name=f"in{i}") for i in range(n)]
        # A Dense before each input so that the merge's gradients reach
        # weights too.
        hs = [L.Dense(shape[-1], name=f"pre{i}")(x) for i, x in enumerate(ins)]
        return keras.Model(ins, cls(**kw)(hs))
    return build


LAYER_CASES = [
    ("dense_rank3", dense_rank3),
    ("activation_softmax_rank3", seq((3, 4), lambda: L.Dense(4), lambda: L.Activation("softmax"))),
    ("activation_gelu", seq((5,), lambda: L.Dense(3), lambda: L.Activation("gelu"))),
    ("dropout_rate0", seq((5,), lambda: L.Dense(3), lambda: L.Dropout(0.0), lambda: L.Dense(2))),
    ("flatten_rank4", seq((2, 3, 2), lambda: L.Flatten(), lambda: L.Dense(3))),
    ("flatten_channels_first", seq((3, 2, 2), lambda: L.Flatten(data_format="channels_first"), lambda: L.Dense(3))),
    ("add2", merge_model(L.Add, 2)),
    ("add3", merge_model(L.Add, 3)),
    ("subtract", merge_model(L.Subtract, 2)),
    ("multiply3", merge_model(L.Multiply, 3)),
    ("average3", merge_model(L.Average, 3)),
    ("maximum2", merge_model(L.Maximum, 2)),
    ("maximum3", merge_model(L.Maximum, 3)),
    ("minimum3", merge_model(L.Minimum, 3)),
    ("concatenate_last", merge_model(L.Concatenate, 3)),
    ("concatenate_axis1", merge_model(L.Concatenate, 2, axis=1)),
    ("concatenate_axis_neg2", merge_model(L.Concatenate, 2, shape=(2, 3, 2), axis=-2)),
]

def rb():
    return {"bias_initializer": "random_normal"}


def conv_seq(shape, layer, head=None):
    """Input → layer (→ head): the layer's output is the model's, its loss
    the mean squared error over every value."""
    return lambda: keras.Sequential([keras.Input(shape), layer()] + ([head()] if head else []))


def pooled(shape, pool):
    """Input → 1×1 Conv2D/Conv1D (so the case has weights) → pool."""
    conv = L.Conv1D if len(shape) == 2 else L.Conv2D
    return lambda: keras.Sequential([keras.Input(shape), conv(shape[-1], 1, **rb()), pool()])


def mnist_convnet_small():
    return keras.Sequential([
        keras.Input((10, 10, 1)),
        L.Conv2D(4, 3, activation="relu", **rb()),
        L.MaxPooling2D(),
        L.Conv2D(6, 2, activation="relu", **rb()),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dropout(0.0),
        L.Dense(3, activation="softmax"),
    ])


CONV_CASES = [
    ("conv1d_valid", conv_seq((9, 2), lambda: L.Conv1D(3, 3, **rb()))),
    ("conv1d_same_stride2_relu", conv_seq((9, 2), lambda: L.Conv1D(3, 4, strides=2, padding="same", activation="relu", **rb()))),
    ("conv1d_causal_dilated", conv_seq((9, 2), lambda: L.Conv1D(2, 3, padding="causal", dilation_rate=2, **rb()))),
    ("conv1d_groups", conv_seq((8, 4), lambda: L.Conv1D(4, 2, groups=2, **rb()))),
    ("conv2d_valid", conv_seq((6, 6, 2), lambda: L.Conv2D(3, 3, **rb()))),
    ("conv2d_same_stride2_relu", conv_seq((7, 6, 2), lambda: L.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu", **rb()))),
    ("conv2d_same_even_stride2", conv_seq((6, 6, 2), lambda: L.Conv2D(2, 3, strides=2, padding="same", **rb()))),
    ("conv2d_valid_strides21_tanh", conv_seq((7, 5, 2), lambda: L.Conv2D(3, 3, strides=(2, 1), activation="tanh", **rb()))),
    ("conv2d_dilated_same", conv_seq((7, 7, 2), lambda: L.Conv2D(2, 3, dilation_rate=2, padding="same", **rb()))),
    ("conv2d_groups", conv_seq((5, 5, 4), lambda: L.Conv2D(6, 3, groups=2, padding="same", **rb()))),
    ("conv2d_1x1", conv_seq((4, 5, 3), lambda: L.Conv2D(2, 1, activation="sigmoid", **rb()))),
    ("conv2d_nobias_l2", conv_seq((5, 5, 2), lambda: L.Conv2D(3, 2, use_bias=False, kernel_regularizer=keras.regularizers.L2(0.05)))),
    ("conv2d_bias_l1_softmax", conv_seq((5, 5, 2), lambda: L.Conv2D(3, 2, activation="softmax", bias_regularizer=keras.regularizers.L1(0.02), **rb()))),
    ("depthwise1d", conv_seq((8, 3), lambda: L.DepthwiseConv1D(3, depth_multiplier=2, padding="same", **rb()))),
    ("depthwise2d_valid", conv_seq((5, 5, 3), lambda: L.DepthwiseConv2D(3, **rb()))),
    ("depthwise2d_same_mult2_stride2_relu", conv_seq((6, 6, 2), lambda: L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", activation="relu", **rb()))),
    ("depthwise2d_dilated_l2", conv_seq((7, 7, 2), lambda: L.DepthwiseConv2D(3, dilation_rate=2, depthwise_regularizer=keras.regularizers.L2(0.05), **rb()))),
    ("separable1d", conv_seq((8, 3), lambda: L.SeparableConv1D(4, 3, padding="same", **rb()))),
    ("separable2d_valid", conv_seq((6, 6, 3), lambda: L.SeparableConv2D(4, 3, **rb()))),
    ("separable2d_same_mult2_stride2_elu", conv_seq((6, 5, 2), lambda: L.SeparableConv2D(3, 3, depth_multiplier=2, strides=2, padding="same", activation="elu",
                                                                                         pointwise_regularizer=keras.regularizers.L2(0.05), **rb()))),
    ("conv1d_transpose_same_stride2", conv_seq((5, 3), lambda: L.Conv1DTranspose(2, 3, strides=2, padding="same", **rb()))),
    ("conv2d_transpose_valid", conv_seq((4, 4, 2), lambda: L.Conv2DTranspose(3, 3, **rb()))),
    ("conv2d_transpose_valid_stride2", conv_seq((3, 4, 2), lambda: L.Conv2DTranspose(2, 3, strides=2, **rb()))),
    ("conv2d_transpose_same_stride2_relu", conv_seq((3, 3, 2), lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same", activation="relu", **rb()))),
    ("conv2d_transpose_same_k4_stride2", conv_seq((3, 3, 2), lambda: L.Conv2DTranspose(2, 4, strides=2, padding="same", **rb()))),
    ("conv2d_transpose_valid_k2_stride3", conv_seq((3, 2, 2), lambda: L.Conv2DTranspose(2, 2, strides=3, **rb()))),
    ("conv2d_transpose_output_padding", conv_seq((3, 3, 2), lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=0, **rb()))),
    ("conv2d_transpose_output_padding_valid", conv_seq((3, 3, 2), lambda: L.Conv2DTranspose(2, 3, strides=(2, 3), output_padding=(1, 2), **rb()))),
    ("conv2d_transpose_dilated", conv_seq((3, 4, 2), lambda: L.Conv2DTranspose(2, 2, dilation_rate=2, padding="same", **rb()))),
    ("maxpool1d", pooled((9, 2), lambda: L.MaxPooling1D())),
    ("maxpool1d_same_stride1", pooled((7, 2), lambda: L.MaxPooling1D(3, strides=1, padding="same"))),
    ("avgpool1d_same", pooled((9, 2), lambda: L.AveragePooling1D(2, padding="same"))),
    ("maxpool2d", pooled((6, 6, 2), lambda: L.MaxPooling2D())),
    ("maxpool2d_same_3_stride2", pooled((7, 7, 2), lambda: L.MaxPooling2D(3, strides=2, padding="same"))),
    ("maxpool2d_overlap", pooled((5, 6, 2), lambda: L.MaxPooling2D((3, 2), strides=1))),
    ("avgpool2d", pooled((6, 5, 2), lambda: L.AveragePooling2D(2))),
    ("avgpool2d_same_3_stride2", pooled((7, 6, 2), lambda: L.AveragePooling2D(3, strides=2, padding="same"))),
    ("global_avgpool1d", pooled((7, 3), lambda: L.GlobalAveragePooling1D())),
    ("global_maxpool1d_keepdims", pooled((7, 3), lambda: L.GlobalMaxPooling1D(keepdims=True))),
    ("global_avgpool2d_keepdims", pooled((4, 5, 3), lambda: L.GlobalAveragePooling2D(keepdims=True))),
    ("global_maxpool2d", pooled((4, 5, 3), lambda: L.GlobalMaxPooling2D())),
]

MODEL_CASES = [
    dict(name="mnist_convnet_small", build=mnist_convnet_small, loss="categorical_crossentropy", metrics=["accuracy"],
         targets=lambda m, r: [np.eye(3, dtype=np.float32)[r.integers(0, 3, N)]]),
]

RANDOM_LAYER_CASES = [
    # Training draws random masks: inference only.
    ("dropout_inference", seq((5,), lambda: L.Dense(3), lambda: L.Dropout(0.5, seed=3), lambda: L.Dense(2))),
]


def make_layers():
    cases = [make_case(n, b, seed=i) for i, (n, b) in enumerate(LAYER_CASES)]
    # One optimizer each: the optimizers have their own fixtures.
    cases += [make_case(n, b, seed=50 + i, n=2, optimizers=OPTIMIZERS[i % 2:][:1]) for i, (n, b) in enumerate(CONV_CASES)]
    for i, c in enumerate(MODEL_CASES):
        c = dict(c)
        cases.append(make_case(c.pop("name"), c.pop("build"), seed=300 + i, **c))
    cases += [make_case(n, b, seed=100 + i, random_training=True) for i, (n, b) in enumerate(RANDOM_LAYER_CASES)]
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# ------------------------------------------------------------------ graphs

def residual_dense():
    x = keras.Input((6,), name="x")
    h = L.Dense(6, activation="relu", name="a")(x)
    h = L.Dense(6, name="b")(h)
    h = L.Add(name="skip")([x, h])
    h = L.Activation("relu", name="post")(h)
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h))


def inception_dense():
    x = keras.Input((5,), name="x")
    b1 = L.Dense(3, activation="relu", name="b1")(x)
    b2 = L.Dense(4, activation="tanh", name="b2a")(x)
    b2 = L.Dense(2, name="b2b")(b2)
    b3 = L.Dense(2, activation="sigmoid", name="b3")(x)
    h = L.Concatenate(name="cat")([b1, b2, b3, x])
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h))


def shared_layer():
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    s = L.Dense(4, activation="tanh", name="shared")
    sa = s(a)
    # Called three times, once on its own output, which also feeds cat.
    h = L.Concatenate(name="cat")([sa, s(b), s(sa)])
    return keras.Model([a, b], L.Dense(2, name="head")(h))


def shared_twice_in_chain():
    x = keras.Input((3,), name="x")
    s = L.Dense(3, activation="tanh", name="shared")
    return keras.Model(x, L.Dense(2, name="head")(L.Add(name="sum")([s(s(x)), x])))


def two_input():
    a = keras.Input((4,), name="user")
    b = keras.Input((3,), name="item")
    ha = L.Dense(5, activation="relu", name="ua")(a)
    hb = L.Dense(5, activation="relu", name="ib")(b)
    h = L.Multiply(name="mul")([ha, hb])
    return keras.Model([a, b], L.Dense(1, activation="sigmoid", name="score")(h))


def two_output():
    x = keras.Input((5,), name="x")
    h = L.Dense(6, activation="relu", name="trunk")(x)
    cls = L.Dense(3, activation="softmax", name="cls")(h)
    reg = L.Dense(2, name="reg")(h)
    return keras.Model(x, [cls, reg])


def two_output_targets(model, rng):
    return [np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)],
            rng.standard_normal((N, 2)).astype(np.float32)]


def nested():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="relu", name="in_d")], name="inner")
    x = keras.Input((4,), name="x")
    h = L.Add(name="sum")([inner(x), inner(L.Dense(4, name="pre")(x))])
    return keras.Model(x, L.Dense(2, name="head")(h))


def frozen():
    x = keras.Input((5,), name="x")
    base = L.Dense(4, activation="relu", name="base", trainable=False)
    h = base(x)
    return keras.Model(x, L.Dense(2, name="head")(h))


def frozen_middle():
    x = keras.Input((5,), name="x")
    h = L.Dense(4, activation="tanh", name="first")(x)
    h = L.Dense(4, activation="tanh", name="frozen", trainable=False)(h)
    return keras.Model(x, L.Dense(2, name="head")(h))


def residual_conv():
    x = keras.Input((6, 6, 3), name="x")
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="c1", bias_initializer="random_normal")(x)
    h = L.Conv2D(3, 3, padding="same", name="c2", bias_initializer="random_normal")(h)
    h = L.Add(name="skip")([x, h])
    h = L.Activation("relu", name="post")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h))


def inception_conv():
    x = keras.Input((6, 6, 3), name="x")
    b1 = L.Conv2D(2, 1, activation="relu", name="b1")(x)
    b2 = L.Conv2D(2, 1, activation="relu", name="b2a")(x)
    b2 = L.Conv2D(3, 3, padding="same", activation="relu", name="b2b")(b2)
    b3 = L.MaxPooling2D(3, strides=1, padding="same", name="b3pool")(x)
    b3 = L.Conv2D(2, 1, activation="relu", name="b3")(b3)
    h = L.Concatenate(name="cat")([b1, b2, b3])
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h))


def binary_targets(model, rng):
    return [rng.integers(0, 2, (N, 1)).astype(np.float32)]


def onehot3(model, rng):
    return [np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)]]


GRAPH_CASES = [
    dict(name="residual_dense", build=residual_dense, loss="categorical_crossentropy", metrics=["accuracy"], targets=onehot3),
    dict(name="inception_dense", build=inception_dense, loss="categorical_crossentropy", targets=onehot3),
    dict(name="residual_conv", build=residual_conv, loss="categorical_crossentropy", metrics=["accuracy"], targets=onehot3),
    dict(name="inception_conv", build=inception_conv, loss="categorical_crossentropy", targets=onehot3),
    dict(name="shared_layer", build=shared_layer),
    dict(name="shared_twice_in_chain", build=shared_twice_in_chain),
    dict(name="two_input", build=two_input, loss="binary_crossentropy", metrics=["accuracy"], targets=binary_targets),
    dict(name="two_output", build=two_output, loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
         metrics=[["accuracy"], ["mae"]], targets=two_output_targets),
    dict(name="nested_model", build=nested),
    dict(name="frozen_base", build=frozen),
    dict(name="frozen_middle", build=frozen_middle),
]


def make_graphs():
    cases = []
    for i, c in enumerate(GRAPH_CASES):
        c = dict(c)
        cases.append(make_case(c.pop("name"), c.pop("build"), seed=200 + i, **c))
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


def make_convnet():
    keras.backend.clear_session()
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        L.MaxPooling2D(pool_size=(2, 2)),
        L.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        L.MaxPooling2D(pool_size=(2, 2)),
        L.Flatten(),
        L.Dropout(0.5),
        L.Dense(10, activation="softmax"),
    ], name="mnist_convnet")
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    model_json = json.loads(model.to_json())
    cc = model_json.pop("compile_config")
    return {"model": model_json, "compile": {k: cc[k] for k in ("optimizer", "loss", "metrics")}}


def write(path, obj, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":") if indent is None else None, indent=indent)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["layers", "graphs", "convnet"]
    if "layers" in parts:
        write(os.path.join(HERE, "layers.json"), make_layers())
    if "graphs" in parts:
        write(os.path.join(HERE, "graphs.json"), make_graphs())
    if "convnet" in parts:
        write(os.path.join(ROOT, "examples", "mnist_convnet", "model.json"), make_convnet(), indent=2)
