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
