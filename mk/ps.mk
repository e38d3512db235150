# Parameter server: protobuf generation and benchmarks. Included by the
# top-level Makefile; uses $(GO).

GO ?= go
PS_TOOLS := $(CURDIR)/.tools/bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PS_PROTO_PATH := $(PS_TOOLS):$(PATH)

.PHONY: proto proto-check proto-tools bench-ps

$(PS_TOOLS)/protoc-gen-go:
	GOBIN=$(PS_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PS_TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(PS_TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# protoc comes from Debian's protobuf-compiler; the generated code records
# its version, so proto-check expects the same one.
proto-tools: $(PS_TOOLS)/protoc-gen-go $(PS_TOOLS)/protoc-gen-go-grpc
	@command -v protoc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler; \
	  else echo "ps.mk: protoc missing: install Debian's protobuf-compiler" >&2; exit 1; fi; }

proto: proto-tools
	PATH=$(PS_PROTO_PATH) $(GO) generate ./ps/pspb

proto-check: proto-tools
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	cp ps/pspb/ps.proto ps/pspb/generate.go $$tmp/ && \
	(cd $$tmp && PATH=$(PS_PROTO_PATH) protoc --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative ps.proto) && \
	for f in ps.pb.go ps_grpc.pb.go; do \
	  cmp -s $$tmp/$$f ps/pspb/$$f || { echo "ps.mk: ps/pspb/$$f is stale: run make proto" >&2; diff -u ps/pspb/$$f $$tmp/$$f | head -20 >&2; exit 1; }; \
	done && echo "ps/pspb: generated code up to date"

# -count 5 so benchstat or a median can be taken; -run '^$$' skips tests.
bench-ps:
	mkdir -p .tools && $(GO) test -run '^$$' -bench . -benchmem -count 5 -timeout 30m ./ps/ | tee .tools/bench-ps.txt

# bench-ps-compare runs benchmarks PS_BENCH of revision PS_BASE and of the
# working tree alternately, PS_COUNT rounds each, in one run, and prints
# each benchmark's median ns/op and MB/s before and after and their ratio
# (raw results in .tools/bench-ps-compare.txt). Check `uptime` first: the
# machine's other work shows in the numbers.
PS_BASE ?= HEAD
PS_COUNT ?= 5
PS_BENCH ?= Pull|Push$$
.PHONY: bench-ps-compare
bench-ps-compare:
	@mkdir -p .tools && tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	mkdir $$tmp/base && git archive $(PS_BASE) | tar -x -C $$tmp/base && \
	(cd $$tmp/base && $(GO) test -c -o $$tmp/before.test ./ps/) && \
	$(GO) test -c -o $$tmp/after.test ./ps/ && \
	echo "ps.mk: $(PS_BASE) (before) against the working tree (after), $(PS_COUNT) rounds; $$(uptime)" && \
	for i in $$(seq $(PS_COUNT)); do for v in before after; do \
	  (cd ps && $$tmp/$$v.test -test.run '^$$' -test.bench '$(PS_BENCH)' -test.count 1) | \
	    awk -v v=$$v '/^Benchmark/ { print v, $$0 }'; \
	done; done > .tools/bench-ps-compare.txt && \
	printf "%-32s %14s %14s %10s %10s %8s\n" benchmark "before ns/op" "after ns/op" "before MB/s" "after MB/s" speedup && \
	awk '{ for (i = 3; i < NF; i++) { if ($$(i+1) == "ns/op") ns = $$i; if ($$(i+1) == "MB/s") mb = $$i } print $$2, $$1, ns, mb }' .tools/bench-ps-compare.txt | \
	sort -k1,1 -k2,2 -k3,3g | \
	awk 'function flush() { if (n) { m = n % 2 ? ns[(n+1)/2] : (ns[n/2] + ns[n/2+1]) / 2; \
	        mb = n % 2 ? mbs[(n+1)/2] : (mbs[n/2] + mbs[n/2+1]) / 2; med[key] = m; mbm[key] = mb } n = 0 } \
	     { k = $$1 " " $$2; if (k != key) { flush(); key = k; names[$$1] = 1 } n++; ns[n] = $$3; mbs[n] = $$4 } \
	     END { flush(); for (b in names) printf "%-32s %14.0f %14.0f %10.1f %10.1f %7.2fx\n", b, med[b " before"], med[b " after"], mbm[b " before"], mbm[b " after"], med[b " before"] / med[b " after"] }' | sort
