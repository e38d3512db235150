#!/usr/bin/env python3
"""Make the Keras parity fixtures of the normalization, reshaping, noise,
preprocessing and activation layer families that gokernel's
keras_family_test.go reads.

Each family is written to its own file, layers_<family>.json, in the format
make_layer_fixtures.py documents (this script uses its make_case). CI never
runs this script: its outputs are committed beside it. Re-run it by hand
when a fixture must change (from the repository root, with the
repository's .venv):

    KERAS_BACKEND=jax .venv/bin/python \\
        gokernel/testdata/keras/make_family_fixtures.py [FAMILY...]

FAMILY is norm, reshape, noise, preprocessing or activation (default: all).

Made with keras 3.15.1 on the jax 0.10.2 backend (CPU), float32 throughout.
Cases whose training draws random numbers (the noise layers with a
non-zero rate) are checked in inference mode only; their training-mode
behaviour is tested statistically in Go.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as L  # noqa: E402

from make_layer_fixtures import HERE, make_case, seq, write  # noqa: E402


def rn():
    """Initializers that make γ and β differ from 1 and 0."""
    return {"gamma_initializer": keras.initializers.RandomUniform(0.5, 1.5),
            "beta_initializer": "random_normal"}


def bn():
    """BatchNormalization initializers that make every weight and moving
    statistic differ from its default."""
    return {**rn(), "moving_mean_initializer": keras.initializers.RandomNormal(0.0, 0.5),
            "moving_variance_initializer": keras.initializers.RandomUniform(0.5, 1.5)}


def dense_then(shape, *layers, units=None):
    """Input → Dense with tanh (so the case has weights before the layer
    and its input gradient is checked through them; the tanh keeps a
    normalization from cancelling the Dense bias, whose gradient would be
    zero and Adam's steps on it noise) → layers."""
    units = units or shape[-1]
    return seq(shape, lambda: L.Dense(units, activation="tanh", bias_initializer="random_normal"), *layers)


# ------------------------------------------------------------ normalization

NORM_CASES = [
    ("layernorm_last", dense_then((5,), lambda: L.LayerNormalization(**rn()))),
    ("layernorm_rank3_last", dense_then((3, 4), lambda: L.LayerNormalization(epsilon=1e-5, **rn()))),
    ("layernorm_axis1_rank3", dense_then((3, 4), lambda: L.LayerNormalization(axis=1, **rn()))),
    ("layernorm_axes12", dense_then((3, 4), lambda: L.LayerNormalization(axis=[1, 2], **rn()))),
    ("layernorm_axes_neg_rank4", dense_then((2, 3, 2), lambda: L.LayerNormalization(axis=[-2, -1], **rn()))),
    ("layernorm_no_center", dense_then((5,), lambda: L.LayerNormalization(center=False, **rn()))),
    ("layernorm_no_scale", dense_then((5,), lambda: L.LayerNormalization(scale=False, **rn()))),
    ("layernorm_plain", dense_then((5,), lambda: L.LayerNormalization(center=False, scale=False))),
    ("layernorm_rms_scaling", dense_then((5,), lambda: L.LayerNormalization(rms_scaling=True, **rn()))),
    ("layernorm_regularized", dense_then((4,), lambda: L.LayerNormalization(
        gamma_regularizer=keras.regularizers.L2(0.1), beta_regularizer=keras.regularizers.L1(0.05), **rn()))),
    ("layernorm_frozen", dense_then((5,), lambda: L.LayerNormalization(trainable=False, **rn()))),
    ("batchnorm_last", dense_then((5,), lambda: L.BatchNormalization(**bn()))),
    ("batchnorm_defaults", dense_then((5,), lambda: L.BatchNormalization())),
    ("batchnorm_rank4_channels_last", dense_then((3, 2, 3), lambda: L.BatchNormalization(momentum=0.9, epsilon=1e-4, **bn()))),
    ("batchnorm_axis1_rank3", dense_then((3, 4), lambda: L.BatchNormalization(axis=1, **bn()))),
    ("batchnorm_no_center", dense_then((5,), lambda: L.BatchNormalization(center=False, **bn()))),
    ("batchnorm_no_scale", dense_then((5,), lambda: L.BatchNormalization(scale=False, **bn()))),
    ("batchnorm_plain", dense_then((5,), lambda: L.BatchNormalization(center=False, scale=False, momentum=0.5))),
    ("batchnorm_regularized", dense_then((4,), lambda: L.BatchNormalization(
        gamma_regularizer=keras.regularizers.L2(0.1), beta_regularizer=keras.regularizers.L1L2(0.05, 0.02), **bn()))),
    ("batchnorm_frozen", dense_then((5,), lambda: L.BatchNormalization(trainable=False, **bn()))),
    ("batchnorm_twice", seq((4,), lambda: L.BatchNormalization(momentum=0.8, **bn()), lambda: L.Dense(3, activation="relu", bias_initializer="random_normal"),
                            lambda: L.BatchNormalization(**bn()), lambda: L.Dense(2))),
    ("groupnorm_groups2", dense_then((6,), lambda: L.GroupNormalization(groups=2, **rn()))),
    ("groupnorm_rank3", dense_then((3, 4), lambda: L.GroupNormalization(groups=2, epsilon=1e-5, **rn()))),
    ("groupnorm_instance", dense_then((3, 4), lambda: L.GroupNormalization(groups=-1, **rn()))),
    ("groupnorm_one_group", dense_then((2, 2, 3), lambda: L.GroupNormalization(groups=1, **rn()))),
    ("groupnorm_axis1_rank3", dense_then((4, 3), lambda: L.GroupNormalization(groups=2, axis=1, **rn()))),
    ("groupnorm_no_center_regularized", dense_then((6,), lambda: L.GroupNormalization(
        groups=2, center=False, gamma_regularizer=keras.regularizers.L2(0.1), **rn()))),
    ("groupnorm_no_scale", dense_then((3, 4), lambda: L.GroupNormalization(groups=4, scale=False, **rn()))),
    ("unitnorm_last", dense_then((5,), lambda: L.UnitNormalization())),
    ("unitnorm_axes12", dense_then((3, 4), lambda: L.UnitNormalization(axis=[1, 2]))),
    ("unitnorm_axis1_rank3", dense_then((3, 4), lambda: L.UnitNormalization(axis=1))),
    ("rmsnorm_last", dense_then((5,), lambda: L.RMSNormalization())),
    ("rmsnorm_axes12", dense_then((3, 4), lambda: L.RMSNormalization(axis=[1, 2], epsilon=1e-3))),
]


# ------------------------------------------------------------ reshaping

RESHAPE_CASES = [
    ("reshape_neg1", dense_then((3, 4), lambda: L.Reshape((-1, 3)))),
    ("reshape_to_rank3", dense_then((6,), lambda: L.Reshape((2, 3, 1)), lambda: L.Dense(2))),
    ("permute_21", dense_then((3, 4), lambda: L.Permute((2, 1)))),
    ("permute_312", dense_then((2, 3, 4), lambda: L.Permute((3, 1, 2)), lambda: L.Dense(2))),
    ("repeat_vector", dense_then((4,), lambda: L.RepeatVector(3))),
    ("zero_padding1d_int", dense_then((5, 2), lambda: L.ZeroPadding1D(2))),
    ("zero_padding1d_pair", dense_then((5, 2), lambda: L.ZeroPadding1D((1, 3)))),
    ("zero_padding1d_channels_first", dense_then((2, 5), lambda: L.ZeroPadding1D((2, 1), data_format="channels_first"))),
    ("zero_padding2d_default", dense_then((3, 4, 2), lambda: L.ZeroPadding2D())),
    ("zero_padding2d_pairs", dense_then((3, 4, 2), lambda: L.ZeroPadding2D(((1, 2), (0, 1))))),
    ("zero_padding2d_channels_first", dense_then((2, 3, 4), lambda: L.ZeroPadding2D((2, 1), data_format="channels_first"))),
    ("zero_padding3d", dense_then((2, 3, 2, 2), lambda: L.ZeroPadding3D(((1, 0), (0, 1), (1, 1))))),
    ("cropping1d", dense_then((6, 2), lambda: L.Cropping1D((1, 2)))),
    ("cropping2d", dense_then((5, 6, 2), lambda: L.Cropping2D(((1, 2), (2, 1))))),
    ("cropping2d_channels_first", dense_then((2, 5, 6), lambda: L.Cropping2D((1, 2), data_format="channels_first"))),
    ("cropping3d", dense_then((4, 3, 4, 2), lambda: L.Cropping3D(((1, 1), (0, 1), (2, 0))))),
    ("upsampling1d", dense_then((3, 2), lambda: L.UpSampling1D(3))),
    ("upsampling2d_nearest", dense_then((2, 3, 2), lambda: L.UpSampling2D((2, 3)))),
    ("upsampling2d_nearest_channels_first", dense_then((2, 2, 3), lambda: L.UpSampling2D(2, data_format="channels_first"))),
    ("upsampling2d_bilinear", dense_then((3, 3, 2), lambda: L.UpSampling2D((2, 3), interpolation="bilinear"))),
    ("upsampling2d_bilinear_channels_first", dense_then((2, 2, 3), lambda: L.UpSampling2D(2, data_format="channels_first", interpolation="bilinear"))),
    ("upsampling3d", dense_then((2, 2, 1, 2), lambda: L.UpSampling3D((2, 1, 3)))),
]


# ------------------------------------------------------------ activations

NEW_ACTIVATIONS = ["silu", "hard_sigmoid", "hard_silu", "mish", "relu6", "softsign", "exponential", "log_softmax",
                   "celu", "hard_tanh", "log_sigmoid", "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus",
                   "sparse_plus", "sparse_sigmoid", "gelu", "elu", "selu", "softplus", "leaky_relu"]


def linear_then(shape, *layers, units=4):
    """Input → a linear Dense (its outputs spread over every region of an
    activation, the inputs being scaled up) → layers."""
    return seq(shape, lambda: L.Dense(units, bias_initializer="random_normal"), *layers)


WIDE = {"x_scale": 2.5}

ACTIVATION_CASES = [
    # exponential diverges under SGD with momentum on wide inputs.
    *[(f"activation_{a}", linear_then((5,), lambda a=a: L.Activation(a)), {} if a == "exponential" else WIDE)
      for a in NEW_ACTIVATIONS],
    ("dense_silu_rank3", seq((3, 4), lambda: L.Dense(3, activation="silu", bias_initializer="random_normal")), WIDE),
    ("dense_log_softmax", seq((5,), lambda: L.Dense(3, activation="log_softmax", bias_initializer="random_normal")), WIDE),
    ("dense_hard_silu", seq((5,), lambda: L.Dense(3, activation="hard_silu", bias_initializer="random_normal")), WIDE),
    ("relu_default", linear_then((5,), lambda: L.ReLU()), WIDE),
    ("relu_max6", linear_then((5,), lambda: L.ReLU(max_value=6.0)), {"x_scale": 6.0}),
    ("relu_max_slope_threshold", linear_then((5,), lambda: L.ReLU(max_value=2.5, negative_slope=0.1, threshold=0.5)), WIDE),
    ("relu_threshold", linear_then((5,), lambda: L.ReLU(threshold=0.7)), WIDE),
    ("relu_slope", linear_then((5,), lambda: L.ReLU(negative_slope=0.25)), WIDE),
    ("relu_max_slope", linear_then((5,), lambda: L.ReLU(max_value=1.5, negative_slope=0.05)), WIDE),
    ("leaky_relu_default", linear_then((5,), lambda: L.LeakyReLU()), WIDE),
    ("leaky_relu_slope", linear_then((5,), lambda: L.LeakyReLU(negative_slope=0.05)), WIDE),
    ("prelu_default", linear_then((5,), lambda: L.PReLU()), WIDE),
    ("prelu_init_regularized", linear_then((3, 4), lambda: L.PReLU(
        alpha_initializer=keras.initializers.RandomUniform(0.0, 0.5), alpha_regularizer=keras.regularizers.L2(0.1))), WIDE),
    ("prelu_shared_axes", linear_then((2, 3, 4), lambda: L.PReLU(
        alpha_initializer=keras.initializers.RandomUniform(0.0, 0.5), shared_axes=[1, 2])), WIDE),
    ("prelu_shared_axis", linear_then((3, 4), lambda: L.PReLU(
        alpha_initializer=keras.initializers.RandomUniform(0.0, 0.5), shared_axes=2)), WIDE),
    ("elu_layer", linear_then((5,), lambda: L.ELU()), WIDE),
    ("softmax_layer", linear_then((5,), lambda: L.Softmax())),
    # Softmax over an axis a Dense does not act on cancels the Dense's bias
    # (its gradient is zero, and Adam's steps on it noise): a tanh between.
    ("softmax_axis1_rank3", dense_then((3, 4), lambda: L.Softmax(axis=1))),
    ("softmax_axes12", linear_then((3, 4), lambda: L.Softmax(axis=[1, 2]))),
    ("softmax_axis_neg2_rank4", dense_then((2, 3, 2), lambda: L.Softmax(axis=-2))),
]


# ------------------------------------------------------------ noise and regularization

NOISE_CASES = [
    # A zero rate makes the training pass deterministic: identity.
    ("spatial_dropout1d_rate0", dense_then((3, 4), lambda: L.SpatialDropout1D(0.0))),
    ("spatial_dropout2d_rate0", dense_then((2, 3, 4), lambda: L.SpatialDropout2D(0.0))),
    ("gaussian_noise_stddev0", dense_then((5,), lambda: L.GaussianNoise(0.0))),
    ("gaussian_dropout_rate0", dense_then((5,), lambda: L.GaussianDropout(0.0))),
    ("activity_regularization_l1", dense_then((5,), lambda: L.ActivityRegularization(l1=0.05), lambda: L.Dense(2))),
    ("activity_regularization_l2", dense_then((3, 4), lambda: L.ActivityRegularization(l2=0.1))),
    ("activity_regularization_l1l2", dense_then((5,), lambda: L.ActivityRegularization(l1=0.02, l2=0.05), lambda: L.Dense(2))),
]

RANDOM_NOISE_CASES = [
    # Training draws random numbers: inference only.
    ("spatial_dropout1d", dense_then((3, 4), lambda: L.SpatialDropout1D(0.5, seed=1))),
    ("spatial_dropout2d", dense_then((2, 3, 4), lambda: L.SpatialDropout2D(0.3))),
    ("spatial_dropout2d_channels_first", dense_then((4, 2, 3), lambda: L.SpatialDropout2D(0.3, data_format="channels_first"))),
    ("spatial_dropout3d", dense_then((2, 2, 2, 3), lambda: L.SpatialDropout3D(0.4))),
    ("gaussian_noise", dense_then((5,), lambda: L.GaussianNoise(0.5, seed=2))),
    ("gaussian_dropout", dense_then((5,), lambda: L.GaussianDropout(0.4))),
]


# ------------------------------------------------------------ preprocessing

def adapted(shape, **kw):
    """A Normalization adapted on random data of the given sample shape."""
    def build():
        n = L.Normalization(**kw)
        n.adapt(np.random.default_rng(7).normal(2.0, 3.0, (20,) + shape).astype(np.float32))
        return keras.Sequential([keras.Input(shape), n, L.Dense(3, bias_initializer="random_normal")])
    return build


PREPROCESSING_CASES = [
    ("rescaling_scalar", seq((5,), lambda: L.Rescaling(1 / 255.0, offset=-1.0), lambda: L.Dense(3)), {"x_scale": 100.0}),
    ("rescaling_channels", seq((2, 3), lambda: L.Rescaling(np.array([0.5, 2.0, -1.0], dtype=np.float32), offset=[0.1, 0.2, 0.3]),
                                lambda: L.Dense(2))),
    ("rescaling_nested", seq((2, 3), lambda: L.Rescaling([[2.0], [0.5]]), lambda: L.Dense(2))),
    ("rescaling_after_dense", dense_then((4,), lambda: L.Rescaling(3.0, offset=0.5))),
    ("normalization_config", seq((4,), lambda: L.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 4.0, 0.25, 2.0]),
                                 lambda: L.Dense(2))),
    ("normalization_config_scalar", seq((2, 3), lambda: L.Normalization(axis=None, mean=2.0, variance=4.0), lambda: L.Dense(2))),
    ("normalization_config_axes12", seq((2, 3), lambda: L.Normalization(axis=(1, 2), mean=np.arange(6.0).reshape(2, 3),
                                                                        variance=np.arange(1.0, 7.0).reshape(2, 3)),
                                        lambda: L.Dense(2))),
    ("normalization_invert", dense_then((4,), lambda: L.Normalization(mean=[1.0, -2.0, 0.0, 4.0], variance=[1.0, 4.0, 0.25, 0.0],
                                                                      invert=True))),
    ("normalization_adapted", adapted((4,))),
    ("normalization_adapted_rank3", adapted((3, 4), axis=1)),
    ("normalization_adapted_all", adapted((3,), axis=None)),
    ("normalization_adapted_invert", adapted((4,), invert=True)),
]


def make_family(cases, seed0, random_cases=()):
    out = [make_case(n, b, seed=seed0 + i, **kw) for i, (n, b, *rest) in enumerate(cases)
           for kw in [rest[0] if rest else {}]]
    out += [make_case(n, b, seed=seed0 + 500 + i, random_training=True) for i, (n, b) in enumerate(random_cases)]
    return {"keras": keras.__version__, "backend": keras.backend.backend(), "cases": out}


FAMILIES = {
    "norm": lambda: make_family(NORM_CASES, 3000),
    "reshape": lambda: make_family(RESHAPE_CASES, 4000),
    "activation": lambda: make_family(ACTIVATION_CASES, 5000),
    "noise": lambda: make_family(NOISE_CASES, 6000, RANDOM_NOISE_CASES),
    "preprocessing": lambda: make_family(PREPROCESSING_CASES, 7000),
}


if __name__ == "__main__":
    for fam in sys.argv[1:] or list(FAMILIES):
        write(os.path.join(HERE, f"layers_{fam}.json"), FAMILIES[fam]())
