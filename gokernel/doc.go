// Package gokernel is Gophas' neural-network kernel: it reads a Keras 3 model
// description, keeps the weights as float32 tensors, and trains, predicts and
// evaluates on the CPU in plain Go (matrix products in internal/gemm).
//
// # Model
//
// A Spec is what Keras' model.to_json() writes for a Sequential or a
// single-chain Functional model, with the compile config (optimizer, loss,
// metrics) when given; see ParseSpec. Supported:
//
//   - layers: InputLayer, Dense (units, activation, use_bias, kernel and bias
//     initializers, L1/L2/L1L2 kernel and bias regularizers), Activation,
//     Dropout (rate, seed; inverted dropout, active only in training),
//     Flatten;
//   - activations: linear, relu, sigmoid, tanh, softmax, softplus, elu, selu,
//     leaky_relu (negative_slope 0.2), gelu (exact erf form);
//   - losses: categorical_crossentropy, sparse_categorical_crossentropy,
//     binary_crossentropy (from probabilities or from_logits),
//     mean_squared_error, mean_absolute_error, huber;
//   - metrics: accuracy (resolved as Keras resolves it), categorical_accuracy,
//     sparse_categorical_accuracy, binary_accuracy, mae, mse;
//   - initializers: glorot_uniform, glorot_normal, he_normal, he_uniform,
//     lecun_normal, lecun_uniform, variance_scaling, random_normal,
//     random_uniform, truncated_normal, zeros, ones, constant.
//
// Everything is float32. Anything else Keras can write (another layer, a
// dtype other than float32, a constraint, an activity regularizer, a frozen
// layer, an unknown activation, a multi-branch graph, an unknown key) is an
// error naming it and the layer's index and name: nothing is silently
// ignored. The math of each piece is stated beside its code (activation,
// lossKind, metricKind, initSpec, regSpec, Model.forward, Model.backward).
//
// A Model holds a Spec, its weights in Keras' get_weights() order, and its
// optimizer (see NewOptimizer). Inputs x are float32 tensors of shape (rows,
// InputDim); targets y are float32 (rows, OutputDim), or integer labels of
// shape (rows) or (rows, 1) for the sparse loss. Initial weights come from a
// seeded Go generator: reproducible, not the numbers Keras draws (load
// Keras' weights with SetWeights for parity).
//
// # Files
//
// Weights are stored as safetensors (WriteSafetensors, ReadSafetensors); a
// model directory (SaveModel, LoadModel) holds model.json, model.safetensors
// and, once trained, optimizer.safetensors.
//
// # Performance
//
// Buffers for the forward and backward passes are allocated for the largest
// batch seen and reused: a training step allocates nothing. WithThreads
// sets the goroutines a matrix product may use.
package gokernel
