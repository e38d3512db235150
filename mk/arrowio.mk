# arrowio and the executor worker (pipe): benchmarks and fuzzing.
#
#   make bench-worker   echo throughput through OS pipes, describe, Arrow→matrix
#   make fuzz-worker    60 s each of FuzzWork and FuzzMatrix

.PHONY: bench-worker fuzz-worker

FUZZTIME ?= 60s

bench-worker:
	$(GO) test -run '^$$' -bench 'BenchmarkEcho|BenchmarkDescribe' -benchmem ./pipe
	$(GO) test -run '^$$' -bench 'BenchmarkMatrix' -benchmem ./arrowio

fuzz-worker:
	$(GO) test -run '^$$' -fuzz '^FuzzWork$$' -fuzztime $(FUZZTIME) ./pipe
	$(GO) test -run '^$$' -fuzz '^FuzzMatrix$$' -fuzztime $(FUZZTIME) ./arrowio
