#!/usr/bin/env python3
"""Make the Keras parity fixtures of the sequence layers (Embedding, the
recurrent layers, attention, masks) and of the sequence models that
gokernel's keras_seq_test.go reads.

CI never runs this script: its outputs are committed beside it, and the Go
tests only read them. Re-run it by hand when a fixture must change (from the
repository root, with the repository's .venv):

    KERAS_BACKEND=jax .venv/bin/python \\
        gokernel/testdata/keras/make_seq_fixtures.py [PART...]

PART is layers, models or specs (default: all); they write seq_layers.json,
seq_models.json, and the benchmark models testdata/spec/mnist_lstm.json and
mnist_transformer.json.

Made with keras 3.15.1 on the jax 0.10.2 backend (CPU), float32 throughout.
The cases have the form make_layer_fixtures.py describes (its helpers are
imported), with these differences:

    x            an integer input (keras.Input(..., dtype="int32")) holds
                 ids, written as floats; padding ids are 0
    dx           per input, null for an integer input (ids have no gradient)
    masks        the Keras mask each model output carries in inference mode
                 (null for none), as a 0/1 tensor
    evaluate     model.evaluate on x, y at the initial weights: the loss and
                 metrics (of a masked output, over its unmasked positions)

Targets of a sparse loss are integer class indexes, written as floats.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as L  # noqa: E402
from keras.src import backend as kbackend  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_layer_fixtures import (  # noqa: E402
    N, OPTIMIZERS, as_list, shapes, spec_of, tensor, weights_of, write)

T = 5  # steps
F = 3  # features
V = 7  # vocabulary


def is_int(model, i):
    return "int" in str(model.inputs[i].dtype)


def ids(rng, shape, pad):
    """Ids in [1, V) with trailing zeros (padding) in some rows, and a
    zero inside one row, when pad."""
    a = rng.integers(1, V, (N,) + tuple(shape)).astype(np.int32)
    if pad and len(shape) == 1:
        a[0, -2:] = 0
        a[1, -1:] = 0
        a[2, 1] = 0
        a[3, 0] = 0
    return a


def inputs_for(model, rng, pad=True, scale=1.0, zero_steps=False):
    xs = []
    for i, s in enumerate(shapes(model.input_shape)):
        if is_int(model, i):
            xs.append(ids(rng, s[1:], pad))
            continue
        x = (rng.standard_normal((N,) + tuple(s[1:])) * scale).astype(np.float32)
        if zero_steps and len(s) == 3:
            # Steps that are all zeros, for Masking.
            x[0, -2:, :] = 0
            x[1, 1, :] = 0
            x[3, 0, :] = 0
        xs.append(x)
    return xs


def regression_targets(model, rng):
    return [rng.standard_normal((N,) + tuple(s[1:])).astype(np.float32) for s in shapes(model.output_shape)]


def sparse_targets(model, rng):
    return [rng.integers(0, s[-1], (N,) + tuple(s[1:-1])).astype(np.float32) for s in shapes(model.output_shape)]


def grads_of(model, x, y):
    """The training-mode loss and its gradients with respect to the
    trainable variables and the float inputs."""
    model.optimizer.build(model.trainable_variables)
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    mv = [v.value for v in model.metrics_variables]
    ov = [v.value for v in model.optimizer.variables]
    floats = [i for i in range(len(x)) if not is_int(model, i)]
    yin = y if len(y) > 1 else y[0]

    def f(tv, fx):
        xs = list(x)
        for i, v in zip(floats, fx):
            xs[i] = v
        loss, _ = model.compute_loss_and_updates(
            tv, ntv, mv, xs if len(xs) > 1 else xs[0], yin, None, training=True, optimizer_variables=ov)
        return loss

    loss, (g, gx) = jax.value_and_grad(f, argnums=(0, 1))(tv, [x[i] for i in floats])
    dx = [None] * len(x)
    for i, v in zip(floats, gx):
        dx[i] = np.asarray(v)
    return float(loss), [np.asarray(a) for a in g], dx


def output_masks(model, xin):
    outs = as_list(model(xin, training=False))
    masks = []
    for o in outs:
        m = kbackend.get_keras_mask(o)
        masks.append(None if m is None else tensor("mask", np.asarray(m).astype(np.float32)))
    return masks


def run_order(model):
    """The names of the layers Keras' Functional calls, in the order it
    calls them (Function._run_through_graph), operations left out."""
    names = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            op = node.operation
            if node.is_input or op is None or type(op).__module__.startswith("keras.src.ops"):
                continue
            names.append(op.name)
    return names


def make_case(name, build, loss="mse", loss_weights=None, metrics=None, seed=0,
              random_training=False, targets=regression_targets, pad=True, scale=1.0,
              zero_steps=False, steps=10, inputs=None):
    keras.utils.set_random_seed(2000 + seed)
    rng = np.random.default_rng(2000 + seed)
    keras.backend.clear_session()
    model = build()
    x = inputs(model, rng) if inputs else inputs_for(model, rng, pad, scale, zero_steps)
    y = targets(model, rng)
    init = model.get_weights()
    model.compile(optimizer=OPTIMIZERS[0][1](), loss=loss, loss_weights=loss_weights, metrics=metrics)
    xin = x if len(x) > 1 else x[0]
    yin = y if len(y) > 1 else y[0]
    case = {
        "name": name,
        "spec": spec_of(model),
        "weights": weights_of(model),
        "trainable": [any(v is t for t in model.trainable_variables) for v in model.weights],
        "x": [tensor(f"x{i}", a) for i, a in enumerate(x)],
        "y": [tensor(f"y{i}", a) for i, a in enumerate(y)],
        "forward": [tensor(f"out{i}", a) for i, a in enumerate(as_list(model(xin, training=False)))],
        "masks": output_masks(model, xin),
        "order": run_order(model) if hasattr(model, "_nodes_by_depth") else None,
    }
    # Keras' evaluate at the initial weights: the loss and metrics of a
    # masked output over its unmasked positions. (train_on_batch's metrics
    # on the jax backend lose the mask: the trainer computes them outside
    # the traced function that attaches it; the kernel's training metrics
    # follow evaluate, and the tensorflow backend.)
    case["evaluate"] = {k: float(v) for k, v in model.evaluate(xin, yin, verbose=0, return_dict=True).items()}
    if not random_training:
        case["forward_train"] = [tensor(f"out{i}", a) for i, a in enumerate(as_list(model(xin, training=True)))]
        loss_v, g, dx = grads_of(model, x, y)
        case["loss"] = loss_v
        case["grads"] = [tensor(v.path, a) for v, a in zip(model.trainable_variables, g)]
        case["dx"] = [None if a is None else tensor(f"dx{i}", a) for i, a in enumerate(dx)]
        case["train"] = []
        for oname, make_opt in OPTIMIZERS:
            keras.backend.clear_session()
            model = build()
            model.set_weights(init)
            model.compile(optimizer=make_opt(), loss=loss, loss_weights=loss_weights, metrics=metrics)
            losses, after1 = [], None
            for step in range(steps):
                out = model.train_on_batch(xin, yin, return_dict=True)
                losses.append(float(out["loss"]))
                if step == 0:
                    after1 = weights_of(model)
            case["train"].append({"optimizer": oname, "config": keras.optimizers.serialize(model.optimizer),
                                  "losses": losses, "after1": after1, "after10": weights_of(model)})
    return case


# ------------------------------------------------------------------ layers

def seq_in(*layers, shape=(T, F)):
    return lambda: keras.Sequential([keras.Input(shape)] + [l() for l in layers])


def tokens(*layers, mask_zero=True, dim=4, name=None, **emb):
    """An int32 token input of T ids, an Embedding, then the layers."""
    def build():
        x = keras.Input((T,), dtype="int32", name="tokens")
        h = L.Embedding(V, dim, mask_zero=mask_zero, name="emb", **emb)(x)
        for l in layers:
            h = l()(h)
        return keras.Model(x, h, name=name)
    return build


def encoder_decoder():
    a = keras.Input((T, F), name="enc_in")
    b = keras.Input((T - 1, F), name="dec_in")
    _, h, c = L.LSTM(4, return_state=True, name="enc")(a)
    d = L.LSTM(4, return_sequences=True, name="dec")(b, initial_state=[h, c])
    return keras.Model([a, b], L.Dense(2, name="head")(d))


def gru_state():
    a = keras.Input((T, F), name="a")
    y, h = L.GRU(3, return_state=True, name="g")(a)
    return keras.Model(a, L.Concatenate(name="cat")([y, h]))


def lstm_state_outputs():
    a = keras.Input((T, F), name="a")
    y, h, c = L.LSTM(3, return_sequences=True, return_state=True, go_backwards=True, name="l")(a)
    return keras.Model(a, [L.Dense(2, name="hy")(y), L.Add(name="hc")([h, c])])


def simple_state():
    a = keras.Input((T, F), name="a")
    s = keras.Input((3,), name="s")
    y = L.SimpleRNN(3, name="r")(a, initial_state=s)
    return keras.Model([a, s], y)


R = lambda cls, **kw: (lambda: cls(**kw))  # noqa: E731

LAYER_CASES = [
    # SimpleRNN
    dict(name="simple_rnn", build=seq_in(R(L.SimpleRNN, units=4), R(L.Dense, units=2))),
    dict(name="simple_rnn_sequences_backwards", build=seq_in(R(L.SimpleRNN, units=4, return_sequences=True, go_backwards=True))),
    dict(name="simple_rnn_relu_nobias_reg", build=seq_in(R(L.SimpleRNN, units=3, activation="relu", use_bias=False,
                                                           kernel_regularizer="l2", recurrent_regularizer=keras.regularizers.L1(0.01)), R(L.Dense, units=2)), scale=0.5),
    dict(name="simple_rnn_initial_state", build=simple_state),
    # LSTM
    dict(name="lstm", build=seq_in(R(L.LSTM, units=4), R(L.Dense, units=2))),
    dict(name="lstm_sequences", build=seq_in(R(L.LSTM, units=3, return_sequences=True, bias_initializer="random_normal"))),
    dict(name="lstm_backwards_no_forget_bias", build=seq_in(R(L.LSTM, units=3, go_backwards=True, unit_forget_bias=False, bias_initializer="random_normal"), R(L.Dense, units=2))),
    dict(name="lstm_state_outputs", build=lstm_state_outputs),
    dict(name="lstm_activations", build=seq_in(R(L.LSTM, units=3, activation="relu", recurrent_activation="tanh", return_sequences=True, bias_regularizer="l2")), scale=0.5),
    dict(name="lstm_encoder_decoder", build=encoder_decoder),
    # GRU
    dict(name="gru", build=seq_in(R(L.GRU, units=4, bias_initializer="random_normal"), R(L.Dense, units=2))),
    dict(name="gru_reset_before", build=seq_in(R(L.GRU, units=4, reset_after=False, return_sequences=True, bias_initializer="random_normal"))),
    dict(name="gru_backwards_state", build=gru_state),
    dict(name="gru_reset_before_backwards", build=seq_in(R(L.GRU, units=3, reset_after=False, go_backwards=True, bias_initializer="random_normal"), R(L.Dense, units=2))),
    # Embedding
    dict(name="embedding_flatten", build=tokens(lambda: L.Flatten(), lambda: L.Dense(2), mask_zero=False)),
    dict(name="embedding_regularized", build=tokens(lambda: L.Flatten(), lambda: L.Dense(2), mask_zero=False,
                                                      embeddings_regularizer="l2", embeddings_initializer="random_normal")),
    # Masks through the recurrent layers
    dict(name="mask_lstm", build=tokens(lambda: L.LSTM(3), lambda: L.Dense(2))),
    dict(name="mask_lstm_sequences", build=tokens(lambda: L.LSTM(3, return_sequences=True), lambda: L.Dense(3, activation="softmax")),
         loss="sparse_categorical_crossentropy", metrics=["accuracy"], targets=sparse_targets),
    dict(name="mask_gru_backwards", build=tokens(lambda: L.GRU(3, go_backwards=True, return_sequences=True), lambda: L.Dense(2))),
    dict(name="mask_gru_reset_before", build=tokens(lambda: L.GRU(3, reset_after=False), lambda: L.Dense(2))),
    dict(name="mask_simple_rnn_zero_output", build=tokens(lambda: L.SimpleRNN(3, return_sequences=True, zero_output_for_mask=True))),
    dict(name="mask_lstm_unroll", build=tokens(lambda: L.LSTM(3, return_sequences=True, unroll=True))),
    dict(name="mask_lstm_unroll_last", build=tokens(lambda: L.LSTM(3, unroll=True, go_backwards=True))),
    dict(name="masking_lstm", build=seq_in(R(L.Masking), R(L.LSTM, units=3, return_sequences=True), R(L.Dense, units=2)), zero_steps=True),
    dict(name="masking_value", build=seq_in(R(L.Masking, mask_value=0.5), R(L.SimpleRNN, units=3)), zero_steps=True),
    dict(name="mask_dense_passes", build=tokens(lambda: L.Dense(3), lambda: L.Dropout(0.0), lambda: L.Activation("tanh"),
                                                lambda: L.GRU(2))),
]

# Bidirectional and TimeDistributed


def bidir(merge, **kw):
    return seq_in(lambda: L.Bidirectional(L.LSTM(3, **kw), merge_mode=merge))


def bidir_state():
    a = keras.Input((T, F), name="a")
    outs = L.Bidirectional(L.GRU(2, return_state=True, return_sequences=True), merge_mode=None, name="bi")(a)
    return keras.Model(a, [L.Dense(2, name="d0")(outs[0]), L.Dense(2, name="d1")(outs[1]), L.Concatenate(name="st")(list(outs[2:]))])


def bidir_initial_state():
    a = keras.Input((T, F), name="a")
    h = [keras.Input((2,), name=f"h{i}") for i in range(4)]
    y = L.Bidirectional(L.LSTM(2), name="bi")(a, initial_state=h)
    return keras.Model([a] + h, y)


def time_distributed_dropout():
    return keras.Sequential([keras.Input((T, F)), L.TimeDistributed(L.Dense(4, activation="relu")),
                             L.TimeDistributed(L.Dropout(0.0)), L.SimpleRNN(2)])


# Attention


def attention(cls, three=False, causal=False, **kw):
    def build():
        q = keras.Input((4, F), name="q")
        v = keras.Input((T, 2), name="v")
        ins = [q, v]
        args = [q, L.Dense(2, name="vp")(v)]
        if three:
            k = keras.Input((T, F), name="k")
            ins.append(k)
            args.append(k)
        else:
            args[1] = L.Dense(F, name="vp")(v)
        return keras.Model(ins, cls(name="att", **kw)(args, use_causal_mask=causal) if causal else cls(name="att", **kw)(args))
    return build


def masked_attention(cls, causal=False, **kw):
    def build():
        x = keras.Input((T,), dtype="int32", name="tokens")
        h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
        q = L.Dense(4, name="qp")(h)
        a = cls(name="att", **kw)([q, h], use_causal_mask=causal)
        return keras.Model(x, L.Dense(2, name="head")(a))
    return build


def self_attention_q_masked(cls, **kw):
    def build():
        x = keras.Input((T,), dtype="int32", name="tokens")
        h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
        a = cls(name="att", **kw)([h, h, h])
        return keras.Model(x, a)
    return build


# MultiHeadAttention


def mha(cross=False, key=False, causal=False, **kw):
    def build():
        x = keras.Input((T, F), name="x")
        ins = [x]
        args = [x, x]
        if cross:
            y = keras.Input((4, 2), name="y")
            ins.append(y)
            args = [x, y]
        if key:
            k = keras.Input((4 if cross else T, 3), name="k")
            ins.append(k)
            args.append(k)
        a = L.MultiHeadAttention(name="mha", **kw)(*args, use_causal_mask=causal)
        return keras.Model(ins, a)
    return build


def mha_attention_mask():
    x = keras.Input((T, F), name="x")
    m = keras.Input((T, T), name="m")
    a = L.MultiHeadAttention(2, 3, name="mha")(x, x, attention_mask=m)
    return keras.Model([x, m], a)


def mha_attention_mask_targets(model, rng):
    return regression_targets(model, rng)


def mha_masked(dropout=0.0, cross=False):
    def build():
        x = keras.Input((T,), dtype="int32", name="tokens")
        h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
        v = h
        ins = [x]
        if cross:
            y = keras.Input((4,), dtype="int32", name="other")
            ins.append(y)
            v = L.Embedding(V, 4, mask_zero=True, name="emb2")(y)
        a = L.MultiHeadAttention(2, 3, dropout=dropout, name="mha")(h, v)
        return keras.Model(ins, L.Dense(2, name="head")(a))
    return build


def mha_residual_masks():
    """The mask MultiHeadAttention removes from its input: the Add after it
    sees no mask on x (Keras), so its output carries none, while the LSTM,
    whose mask Keras recorded as the model was built, still gets it."""
    x = keras.Input((T,), dtype="int32", name="tokens")
    h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
    a = L.MultiHeadAttention(2, 2, name="mha")(h, h)
    s = L.Add(name="res")([h, a])
    return keras.Model(x, [L.Dense(2, name="seq")(s), L.LSTM(2, name="lstm")(s), L.Dense(2, name="att_out")(a)])


def concat_masks():
    """Concatenate's masks: along the steps each part keeps its own, along
    the features an unmasked part makes every step data."""
    x = keras.Input((T,), dtype="int32", name="tokens")
    f = keras.Input((T, F), name="feats")
    h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
    steps = L.Concatenate(axis=1, name="steps")([h, L.Dense(4, name="fp")(f)])
    feats = L.Concatenate(name="feats_cat")([h, f])
    both = L.Concatenate(axis=1, name="both")([h, h])
    return keras.Model([x, f], [L.LSTM(2, name="l1")(steps), L.Dense(2, name="d2")(feats), L.GRU(2, name="l3")(both)])


# Dot


def dot(shape1, shape2, **kw):
    def build():
        a = keras.Input(shape1, name="a")
        b = keras.Input(shape2, name="b")
        return keras.Model([a, b], L.Dot(name="dot", **kw)([L.Dense(shape1[-1], name="pa")(a), b]))
    return build


LAYER_CASES += [
    dict(name="bidirectional_concat", build=bidir("concat")),
    dict(name="bidirectional_sum_sequences", build=bidir("sum", return_sequences=True)),
    dict(name="bidirectional_mul", build=bidir("mul")),
    dict(name="bidirectional_ave_sequences", build=bidir("ave", return_sequences=True)),
    dict(name="bidirectional_none_state", build=bidir_state),
    dict(name="bidirectional_initial_state", build=bidir_initial_state),
    dict(name="bidirectional_masked_sequences", build=tokens(lambda: L.Bidirectional(L.GRU(2, return_sequences=True)), lambda: L.Dense(2))),
    dict(name="bidirectional_masked_last", build=tokens(lambda: L.Bidirectional(L.SimpleRNN(2), merge_mode="sum"))),
    dict(name="time_distributed_dense", build=seq_in(R(L.TimeDistributed, layer=L.Dense(4, activation="tanh")), R(L.LSTM, units=2))),
    dict(name="time_distributed_masked", build=tokens(lambda: L.TimeDistributed(L.Dense(3, activation="softmax"))),
         loss="sparse_categorical_crossentropy", metrics=["accuracy"], targets=sparse_targets),
    dict(name="time_distributed_dropout0", build=time_distributed_dropout),
    dict(name="attention_dot", build=attention(L.Attention)),
    dict(name="attention_dot_scale_key", build=attention(L.Attention, three=True, use_scale=True)),
    dict(name="attention_concat", build=attention(L.Attention, score_mode="concat")),
    dict(name="attention_concat_scale_causal", build=attention(L.Attention, three=True, causal=True, score_mode="concat", use_scale=True)),
    dict(name="attention_masked", build=masked_attention(L.Attention)),
    dict(name="attention_masked_causal", build=masked_attention(L.Attention, causal=True, use_scale=True)),
    dict(name="attention_query_masked", build=self_attention_q_masked(L.Attention)),
    dict(name="additive_attention", build=attention(L.AdditiveAttention)),
    dict(name="additive_attention_noscale_key", build=attention(L.AdditiveAttention, three=True, use_scale=False)),
    dict(name="additive_attention_masked", build=masked_attention(L.AdditiveAttention, causal=True)),
    dict(name="mha_self", build=mha(num_heads=2, key_dim=3)),
    dict(name="mha_cross", build=mha(cross=True, num_heads=2, key_dim=3)),
    dict(name="mha_key_output_shape", build=mha(cross=True, key=True, num_heads=3, key_dim=2, output_shape=5)),
    dict(name="mha_causal_nobias", build=mha(causal=True, num_heads=2, key_dim=2, use_bias=False, bias_initializer="random_normal")),
    dict(name="mha_regularized", build=mha(num_heads=1, key_dim=4, kernel_regularizer="l2", bias_regularizer="l1", bias_initializer="random_normal")),
    dict(name="mha_attention_mask", build=mha_attention_mask),
    dict(name="mha_masked", build=mha_masked()),
    dict(name="mha_masked_cross", build=mha_masked(cross=True)),
    dict(name="mha_residual_masks", build=mha_residual_masks),
    dict(name="dot_vectors", build=dot((4,), (4,), axes=1)),
    dict(name="dot_vectors_normalize", build=dot((4,), (4,), axes=-1, normalize=True)),
    dict(name="dot_sequences_last", build=dot((3, 4), (T, 4), axes=2)),
    dict(name="dot_sequences_first", build=dot((3, 4), (3, 2), axes=1)),
    dict(name="dot_mixed", build=dot((3, 4), (4, 2), axes=[2, 1])),
    dict(name="dot_matrix_vector_normalize", build=dot((3, 4), (4,), axes=[2, 1], normalize=True)),
]

def mha_block_masked():
    """A masked self-attention block: the residual Adds lose the mask
    (MultiHeadAttention removed it from x), the LayerNormalizations pass
    none, and GlobalAveragePooling1D still averages the unmasked steps: its
    mask was recorded as the model was built."""
    x = keras.Input((T,), dtype="int32", name="tokens")
    h = L.Embedding(V, 4, mask_zero=True, name="emb")(x)
    a = L.MultiHeadAttention(2, 2, name="mha")(h, h)
    h = L.LayerNormalization(name="ln1")(L.Add(name="res1")([h, a]))
    f = L.Dense(4, name="ff2")(L.Dense(6, activation="relu", name="ff1")(h))
    h = L.LayerNormalization(name="ln2")(L.Add(name="res2")([h, f]))
    return keras.Model(x, L.Dense(2, name="head")(L.GlobalAveragePooling1D(name="gap")(h)))


LAYER_CASES += [
    dict(name="gap1d_masked", build=tokens(lambda: L.GlobalAveragePooling1D(), lambda: L.Dense(2))),
    dict(name="gap1d_masked_keepdims", build=tokens(lambda: L.Dense(3), lambda: L.GlobalAveragePooling1D(keepdims=True))),
    dict(name="gmp1d_masked_ignored", build=tokens(lambda: L.GlobalMaxPooling1D(), lambda: L.Dense(2))),
    dict(name="layer_norm_passes_mask", build=tokens(lambda: L.LayerNormalization(), lambda: L.Dropout(0.0), lambda: L.GlobalAveragePooling1D())),
    dict(name="masking_gap1d", build=seq_in(R(L.Masking), R(L.Dense, units=3), R(L.GlobalAveragePooling1D)), zero_steps=True),
    dict(name="mha_block_masked", build=mha_block_masked),
    dict(name="concatenate_masks", build=lambda: concat_masks()),
]

RANDOM_LAYER_CASES = [
    # Training draws dropout masks: inference only.
    dict(name="lstm_dropout", build=seq_in(R(L.LSTM, units=3, dropout=0.3, recurrent_dropout=0.2, seed=1))),
    dict(name="gru_dropout", build=seq_in(R(L.GRU, units=3, dropout=0.3, recurrent_dropout=0.2, seed=1))),
    dict(name="simple_rnn_dropout", build=seq_in(R(L.SimpleRNN, units=3, dropout=0.3, recurrent_dropout=0.2, seed=1))),
    dict(name="lstm_input_dropout", build=seq_in(R(L.LSTM, units=3, dropout=0.3, return_sequences=True))),
    dict(name="bidirectional_dropout", build=seq_in(R(L.Bidirectional, layer=L.GRU(2, dropout=0.5)))),
    dict(name="attention_dropout", build=masked_attention(L.Attention, dropout=0.4)),
    dict(name="mha_dropout_masked", build=mha_masked(dropout=0.3)),
    # Keras' jax dot_product_attention fails on value_dim != key_dim: with
    # dropout it takes its einsum path, which does not.
    dict(name="mha_value_dim_dropout", build=mha(cross=True, num_heads=2, key_dim=3, value_dim=4, dropout=0.2)),
    dict(name="time_distributed_dropout", build=seq_in(R(L.TimeDistributed, layer=L.Dropout(0.5)), R(L.SimpleRNN, units=2))),
]


def make_layers():
    cases = []
    for i, c in enumerate(LAYER_CASES):
        c = dict(c)
        cases.append(make_case(c.pop("name"), c.pop("build"), seed=i, **c))
    for i, c in enumerate(RANDOM_LAYER_CASES):
        c = dict(c)
        cases.append(make_case(c.pop("name"), c.pop("build"), seed=100 + i, random_training=True, **c))
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# ------------------------------------------------------------------ models

MT = 8   # steps of the model fixtures
MV = 20  # their vocabulary


def model_tokens(model, rng):
    a = rng.integers(1, MV, (N, MT)).astype(np.int32)
    for r, n in enumerate([3, 0, 5, 1]):  # trailing padding
        if n:
            a[r, -n:] = 0
    return [a]


def lstm_classifier():
    x = keras.Input((MT,), dtype="int32", name="tokens")
    h = L.Embedding(MV, 8, mask_zero=True, name="emb")(x)
    h = L.LSTM(8, name="lstm")(h)
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h), name="lstm_classifier")


def classes3(model, rng):
    return [rng.integers(0, 3, (N,)).astype(np.float32)]


def transformer_block(x, d, name):
    a = L.MultiHeadAttention(2, d // 2, name=name + "_mha")(x, x)
    x = L.LayerNormalization(epsilon=1e-6, name=name + "_ln1")(L.Add(name=name + "_res1")([x, a]))
    f = L.Dense(2 * d, activation="relu", name=name + "_ff1")(x)
    f = L.Dense(d, name=name + "_ff2")(f)
    return L.LayerNormalization(epsilon=1e-6, name=name + "_ln2")(L.Add(name=name + "_res2")([x, f]))


def transformer(blocks=1):
    def build():
        rows = keras.Input((MT, F), name="rows")
        pos = keras.Input((MT,), dtype="int32", name="positions")
        d = 8
        h = L.Dense(d, name="project")(rows)
        h = L.Add(name="add_positions")([h, L.Embedding(MT, d, name="position_embedding")(pos)])
        for b in range(blocks):
            h = transformer_block(h, d, f"block{b}")
        h = L.GlobalAveragePooling1D(name="pool")(h)
        return keras.Model([rows, pos], L.Dense(3, activation="softmax", name="head")(h), name="transformer")
    return build


def rows_and_positions(model, rng):
    return [rng.standard_normal((N, MT, F)).astype(np.float32), np.tile(np.arange(MT, dtype=np.int32), (N, 1))]


def masked_transformer():
    x = keras.Input((MT,), dtype="int32", name="tokens")
    h = L.Embedding(MV, 8, mask_zero=True, name="emb")(x)
    h = transformer_block(h, 8, "block0")
    h = L.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(x, L.Dense(3, activation="softmax", name="head")(h), name="masked_transformer")


def dot_recommender():
    u = keras.Input((1,), dtype="int32", name="user")
    i = keras.Input((1,), dtype="int32", name="item")
    eu = L.Flatten(name="uf")(L.Embedding(MV, 4, name="user_embedding")(u))
    ei = L.Flatten(name="if")(L.Embedding(MV + 5, 4, name="item_embedding")(i))
    s = L.Dot(axes=1, name="score")([eu, ei])
    return keras.Model([u, i], L.Activation("sigmoid", name="prob")(s), name="dot_recommender")


def users_items(model, rng):
    return [rng.integers(0, MV, (N, 1)).astype(np.int32), rng.integers(0, MV + 5, (N, 1)).astype(np.int32)]


def binary(model, rng):
    return [rng.integers(0, 2, (N, 1)).astype(np.float32)]


MODEL_CASES = [
    dict(name="embedding_lstm_classifier", build=lstm_classifier, loss="sparse_categorical_crossentropy",
         metrics=["accuracy"], inputs=model_tokens, targets=classes3),
    dict(name="transformer_encoder", build=transformer(1), loss="sparse_categorical_crossentropy",
         metrics=["accuracy"], inputs=rows_and_positions, targets=classes3),
    dict(name="transformer_two_blocks", build=transformer(2), loss="sparse_categorical_crossentropy",
         metrics=["accuracy"], inputs=rows_and_positions, targets=classes3),
    dict(name="masked_transformer", build=masked_transformer, loss="sparse_categorical_crossentropy",
         metrics=["accuracy"], inputs=model_tokens, targets=classes3),
    dict(name="dot_recommender", build=dot_recommender, loss="binary_crossentropy",
         metrics=["accuracy"], inputs=users_items, targets=binary),
]


def make_models():
    cases = []
    for i, c in enumerate(MODEL_CASES):
        c = dict(c)
        cases.append(make_case(c.pop("name"), c.pop("build"), seed=300 + i, **c))
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}


# ------------------------------------------------------------------ specs

def mnist_lstm():
    """MNIST read row by row: 28 steps of 28 pixels, LSTM(128), Dense(10)."""
    x = keras.Input((28, 28), name="rows")
    h = L.LSTM(128, name="lstm")(x)
    return keras.Model(x, L.Dense(10, activation="softmax", name="digit")(h), name="mnist_lstm")


def mnist_transformer():
    """MNIST rows through a two-block transformer encoder: each row
    projected to 64 values plus a learned embedding of its position, two
    blocks of MultiHeadAttention (4 heads of 16), residual Adds,
    LayerNormalization and a feed-forward Dense(128, relu)-Dense(64), then
    the mean over the rows and Dense(10)."""
    rows = keras.Input((28, 28), name="rows")
    pos = keras.Input((28,), dtype="int32", name="positions")
    d = 64
    h = L.Dense(d, name="project")(rows)
    h = L.Add(name="add_positions")([h, L.Embedding(28, d, name="position_embedding")(pos)])
    for b in range(2):
        a = L.MultiHeadAttention(4, 16, name=f"block{b}_mha")(h, h)
        h = L.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln1")(L.Add(name=f"block{b}_res1")([h, a]))
        f = L.Dense(2 * d, activation="relu", name=f"block{b}_ff1")(h)
        f = L.Dense(d, name=f"block{b}_ff2")(f)
        h = L.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln2")(L.Add(name=f"block{b}_res2")([h, f]))
    h = L.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model([rows, pos], L.Dense(10, activation="softmax", name="digit")(h), name="mnist_transformer")


def write_specs():
    """The benchmark models (testdata/spec/mnist_lstm.json and
    mnist_transformer.json): model.to_json() with Adam, the sparse
    cross-entropy and accuracy."""
    spec_dir = os.path.join(HERE, "..", "spec")
    for name, build in [("mnist_lstm", mnist_lstm), ("mnist_transformer", mnist_transformer)]:
        keras.backend.clear_session()
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        with open(os.path.join(spec_dir, name + ".json"), "w") as f:
            json.dump(spec_of(model), f, indent=1)
            f.write("\n")
        print("wrote", os.path.join("gokernel/testdata/spec", name + ".json"))


if __name__ == "__main__":
    parts = sys.argv[1:] or ["layers", "models", "specs"]
    if "specs" in parts:
        write_specs()
    if "layers" in parts:
        write(os.path.join(HERE, "seq_layers.json"), make_layers())
    if "models" in parts:
        write(os.path.join(HERE, "seq_models.json"), make_models())
