// Package gokernel is Gophas' neural-network kernel: it reads a Keras 3 model
// description, keeps the weights as float32 tensors, and trains, predicts and
// evaluates on the CPU in plain Go (matrix products in internal/gemm).
//
// # Model
//
// A Spec is what Keras' model.to_json() writes for a Sequential or a
// Functional model, with the compile config (optimizer, loss, metrics) when
// given; see ParseSpec. A Functional model may be any graph: branches,
// merges, skip connections, a layer called several times (its weights
// shared, their gradients summed over the calls), a tensor read by several
// layers, several inputs and outputs, and models inside models. Supported:
//
//   - layers: InputLayer, Dense (on the last axis of any rank; units,
//     activation, use_bias, kernel and bias initializers, L1/L2/L1L2 kernel
//     and bias regularizers), Activation, Dropout (rate, seed, noise_shape;
//     inverted dropout, active only in training), Flatten (any rank, both
//     data_formats); the merges Add, Subtract, Multiply, Average, Maximum,
//     Minimum (inputs of one shape) and Concatenate (any axis but the
//     batch's); the normalizations BatchNormalization (any channel axis; batch
//     statistics in training, moving statistics, non-trainable weights
//     after gamma and beta, in inference and when frozen),
//     LayerNormalization, GroupNormalization, UnitNormalization and
//     RMSNormalization (over a contiguous run of axes); Reshape, Permute,
//     RepeatVector, ZeroPadding1D/2D/3D, Cropping1D/2D/3D,
//     UpSampling1D/2D/3D (nearest; bilinear in 2D); SpatialDropout1D/2D/3D,
//     GaussianNoise, GaussianDropout, ActivityRegularization (its penalty
//     in the loss, divided by the batch size as Keras does); the
//     preprocessing layers Rescaling and Normalization (configured or
//     adapted, invert included); the activation layers ReLU (max_value,
//     negative_slope, threshold), LeakyReLU, PReLU (shared_axes), ELU and
//     Softmax (an axis or a run of axes);
//   - convolutions, channels last: Conv1D and Conv2D (filters, kernel_size,
//     strides, padding valid/same and causal for 1-D, dilation_rate,
//     groups, activation, use_bias, initializers, regularizers),
//     DepthwiseConv1D/2D (depth_multiplier), SeparableConv1D/2D,
//     Conv1DTranspose/Conv2DTranspose (output_padding); the convolutions
//     are matrix products (gemm.Sgemm) over patches built per chunk of
//     samples (im2col), their plain loops beside them;
//   - pooling: MaxPooling1D/2D, AveragePooling1D/2D (pool_size, strides,
//     padding valid/same), GlobalAveragePooling1D/2D,
//     GlobalMaxPooling1D/2D (keepdims);
//   - sequences: Embedding (input_dim, output_dim, mask_zero, initializer,
//     regularizer; ids from an integer or a float input), Masking
//     (mask_value); SimpleRNN, LSTM and GRU (reset_after true or false;
//     activation, recurrent_activation, use_bias, unit_forget_bias,
//     initializers, regularizers, return_sequences, return_state,
//     go_backwards, dropout, recurrent_dropout, unroll,
//     zero_output_for_mask, a call's initial_state; stateful is refused),
//     Bidirectional (merge_mode concat, sum, mul, ave or None, a
//     backward_layer of its own), TimeDistributed (of a layer that treats
//     samples independently); the input projection of every step is one
//     matrix product, each step adds its recurrent one;
//   - attention: MultiHeadAttention (self and cross attention, a key,
//     value_dim, output_shape, use_bias, dropout, the call's
//     attention_mask and use_causal_mask; attention over the steps of
//     (batch, steps, dim) tensors, the default attention_axes),
//     Attention (use_scale, score_mode dot or concat, dropout,
//     use_causal_mask), AdditiveAttention; Dot (axes, normalize) for
//     dot-product models; one matrix product per projection, one per
//     sample and head for the scores and sums;
//   - masks (see Masks below) through every layer as Keras 3 propagates
//     them, and into the losses and metrics;
//   - every layer's trainable flag: a frozen layer's weights are
//     non-trainable (no gradient, no optimizer update, no regularization),
//     as are the statistics a layer keeps (a normalization's moving mean);
//   - activations: linear, relu, sigmoid, tanh, softmax, softplus, elu, selu,
//     leaky_relu (negative_slope 0.2), gelu (exact erf form, Keras'
//     default), silu (swish), hard_sigmoid, hard_silu (hard_swish), mish,
//     relu6, softsign, exponential, log_softmax, celu, hard_tanh,
//     log_sigmoid, tanh_shrink, soft_shrink, hard_shrink, squareplus,
//     sparse_plus, sparse_sigmoid (glu, threshold, sparsemax are refused);
//   - losses, one per output (a single loss applies to every output, as in
//     Keras; loss_weights weigh them): categorical_crossentropy,
//     sparse_categorical_crossentropy, binary_crossentropy (from
//     probabilities or from_logits), mean_squared_error,
//     mean_absolute_error, huber; on an output of shape (..., k) a loss
//     takes the last axis and averages over the others, as Keras does;
//   - metrics, per output: accuracy (resolved as Keras resolves it),
//     categorical_accuracy, sparse_categorical_accuracy, binary_accuracy,
//     mae, mse; with several outputs named "<output>_<metric>";
//   - initializers: glorot_uniform, glorot_normal, he_normal, he_uniform,
//     lecun_normal, lecun_uniform, variance_scaling, random_normal,
//     random_uniform, truncated_normal, zeros, ones, constant, orthogonal.
//
// Everything is float32 but integer inputs (see Integer inputs below).
// Anything else Keras can write (another layer, a
// dtype other than float32, a constraint, an activity regularizer, an
// unknown activation, an unknown key) is an error naming it and the layer's
// index and name, listing what is supported: nothing is silently ignored.
// The math of each piece is stated beside its code.
//
// A Model holds a Spec, its weights in Keras' get_weights() order, and its
// optimizer (see NewOptimizer; its learning rate a number or a Keras
// schedule, see NewSchedule and Optimizer.SetStep). Activations are float32 tensors of any rank,
// batch first, row-major, channels last. The tensor methods (Predict, Fit,
// ...) take a model with one input and one output: x of shape (rows,
// input shape...) or (rows, InputDim); targets y of shape (rows, OutputDim),
// or integer labels of shape (rows) or (rows, 1) for the sparse loss.
// Initial weights come from a seeded Go generator: reproducible, not the
// numbers Keras draws (load Keras' weights with SetWeights for parity).
//
// # Layers
//
// A layer kind is one type implementing Layer, in one file
// (layer_<kind>.go), and one line in the layerKinds registry mapping its
// Keras class name to its parser. Its doc comment states its math. The
// parser reads every key Keras writes in the layer's config (the obj
// helpers: c.integer, c.str, parseInit, parseReg, ...), refusing by name
// what it does not implement (refuse, or an error listing the supported
// values); a key left unread is an error. The type then answers:
//
//   - outputShapes: the per-sample output shapes of a call on inputs of
//     the given shapes (a shared layer is asked once per call);
//   - weights: its weights in Keras' order, with their initializer,
//     regularizer and whether they are state (non-trainable);
//   - forward(c *call): c.y from c.x, in training or inference mode
//     (c.training), with the weights in c.w; a layer whose output is one of
//     its inputs may point c.y[0] at it; what backward needs is kept in
//     c.buf(i, n) (allocated once, reused for later batches) and random
//     numbers come from c.rng;
//   - backward(c *call): c.dx[i] (where not nil) from c.dy, and the weight
//     gradients added into c.dw[j] (nil for a non-trainable weight).
//
// A layer that adds a term to the loss (Keras' add_loss) also implements
// lossAdder; one that draws random numbers with a seed of its own,
// seeded. Statistics a layer keeps (BatchNormalization's moving mean) are
// weights declared with state set: non-trainable, moved by the forward
// pass in training mode.
//
// A new kind then gets a Keras parity case in
// testdata/keras/make_layer_fixtures.py, or for the normalization,
// reshaping, noise, preprocessing and activation families in
// make_family_fixtures.py (forward outputs, gradients, weights after 1 and
// 10 steps, per argument combination; its Go test reads the fixture with
// no new code), and its backward pass is checked against central
// differences by TestFixtureGradients and TestFamilyFixtureGradients
// (the sequence layers: make_seq_fixtures.py and keras_seq_test.go). A
// fast path (a convolution as a matrix product, an RNN run time-major)
// keeps its plain reference loop beside it, tested against it.
//
// A layer whose call takes keyword arguments (an RNN's initial_state,
// MultiHeadAttention's attention_mask) implements kwargsTaker: it reads
// them and returns the layer as that call uses it, whose tensors become
// inputs of the call; one with several outputs implements multiOutput;
// one that reads integer ids, idTaker.
//
// # Masks
//
// A mask marks the positions of a sequence that hold data:
// Embedding(mask_zero=True) masks the zero ids, Masking the steps whose
// features all equal mask_value. It follows Keras 3's rules (mask.go): a
// layer that supports masking passes its input's mask on (Dense, the
// normalizations, dropout, TimeDistributed, an RNN's sequence output,
// attention's query), the merges and Concatenate combine masks, any other
// layer drops it. The layers that read a mask use it: an RNN keeps its
// state over masked steps, attention leaves masked keys out,
// GlobalAveragePooling1D averages the unmasked steps, and the loss and
// metrics of a masked output average over its unmasked positions. Keras'
// quirks come with them, checked against Keras: MultiHeadAttention removes
// its inputs' masks as it runs, which the calls after it (in Keras' order
// of the calls, see sortKeras) do not see unless Keras recorded the mask
// in the call when the model was built (the mask keyword argument of a
// call, computed by Keras operations the kernel parses but need not run).
// A layer kind supports masking by implementing masker (and maskCombiner
// to combine masks); it reads c.mask and fills c.maskOut.
//
// # Integer inputs and several inputs
//
// A model input whose Keras dtype is int32 or int64
// (keras.Input((T,), dtype="int32")) holds ids: Spec.Inputs marks it
// (IO.IDs), and the kernel carries its values as int32 from the batch to
// the Embeddings that read them, without a round trip through float32.
// Ids outside [0, input_dim) of an Embedding that reads the input are an
// error naming the input, the row, the position and the value. A float
// batch for an integer input is truncated as Keras' cast does (the tensor
// methods take ids that way). A model has any number of inputs and
// outputs, in Keras' order (Spec.Inputs, Spec.Outputs); the tensor
// methods take models with one of each. After a training step,
// SparseGradients lists the rows of each Embedding table the step
// touched, for sparse pushes to the parameter server.
//
// # Training
//
// One training loop serves every entry (Model.Fit, `gophas train`, the Spark
// worker): an Epoch takes rows as a Batch (per model input and output a
// row-major array), shuffles each block of them with the epoch's seeded
// stream, gathers batches with Batch.Gather and runs each through the
// model's loop contract, TrainStep, ApplyGradients and EvaluateBatch (see
// loop.go). Hooks let the Spark worker pull and push around the steps. An
// epoch's shuffle and Dropout masks depend only on (seed, epoch, worker), so
// the same seed gives the same weights through Model.Fit, `gophas train` and
// a one-worker Spark fit. Spec.Labels is the one shaping of labels into
// targets (class indexes, one-hot rows, vectors) and Spec.Info what the
// Scala shim and the Python package read of a spec through `gophas
// inspect`; Open is the one model loader.
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
// sets the goroutines a matrix product, and the loops of patches,
// pooling and activations, may use.
package gokernel
