# Matrix multiply (gokernel/internal/gemm): tests and benchmarks. Included by
# the top-level Makefile; uses $(GO).

GO ?= go
GEMM_PKG := ./gokernel/internal/gemm
GEMM_COUNT ?= 6
GEMM_BENCH ?= .

.PHONY: test-gemm bench-gemm fuzz-gemm

# test-gemm: race tests on amd64 (every kernel the CPU runs: AVX-512, AVX2,
# portable), the portable build on arm64, and the purego build.
test-gemm:
	$(GO) vet $(GEMM_PKG)
	$(GO) test -race $(GEMM_PKG)
	$(GO) test -tags purego $(GEMM_PKG)
	CGO_ENABLED=0 GOARCH=arm64 $(GO) vet $(GEMM_PKG)

# bench-gemm: the FMA peak of each ISA, each micro-kernel alone, and Sgemm
# with every ISA path (avx512, avx2, go) beside gonum's pure-Go Sgemm on the
# MLP shapes and 1024³, threads 1 and 2: GFLOP/s and % of the measured peak
# per run (the peak, clock and CPU are printed first). Other work on the
# machine skews single runs: read medians and side-by-side ratios.
bench-gemm:
	$(GO) test -run '^$$' -bench 'Peak|Kernel|Sgemm/.*/$(GEMM_BENCH)' -count $(GEMM_COUNT) $(GEMM_PKG)

# fuzz-gemm: random small shapes against SgemmRef.
fuzz-gemm:
	$(GO) test -run '^$$' -fuzz FuzzSgemm -fuzztime 60s $(GEMM_PKG)
