# Fuzzing: every fuzz target of the module (every `func FuzzX` in a tracked
# _test.go file, found anew each run), each on its own for a bounded time.
# Included by the top-level Makefile; uses $(GO).
#
#   make fuzz-short   3 s per target; part of `make test`
#   make fuzz         60 s per target, the nightly run (FUZZTIME to change it)
#
# Each target's seeds are committed: its testdata/ files (added with f.Add)
# and testdata/fuzz/<target>/, which also holds every input that once failed
# and the corpus a 60 s run grew (see fuzz-corpus); plain `go test` replays
# them all. A failing input is written to testdata/fuzz/<target>/ by Go
# itself: commit it with its fix.

GO ?= go
FUZZTIME ?= 60s
FUZZ_SHORT ?= 3s

.PHONY: fuzz fuzz-short fuzz-list fuzz-corpus

# fuzz-list prints "package target" per line.
fuzz-list:
	@git ls-files '*_test.go' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | \
	  sed -E 's#^(.*)/[^/]*_test\.go:func #./\1 #; s#^[^./][^ ]*_test\.go:func #. #' | sort -u

fuzz:
	@$(MAKE) -s fuzz-list | while read pkg target; do \
	  echo "== $$target ($$pkg), $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

fuzz-short:
	@$(MAKE) -s fuzz FUZZTIME=$(FUZZ_SHORT)

# fuzz-corpus copies the corpus the last fuzz runs grew (in Go's cache) into
# testdata/fuzz/<target>/, at most FUZZ_KEEP of its smallest inputs per
# target, so plain `go test` replays them.
FUZZ_KEEP ?= 64
fuzz-corpus:
	@cache=$$($(GO) env GOCACHE)/fuzz/github.com/gophas/gophas; \
	$(MAKE) -s fuzz-list | while read pkg target; do \
	  src=$$cache/$${pkg#./}/$$target; [ "$$pkg" = . ] && src=$$cache/$$target; \
	  [ -d "$$src" ] || continue; \
	  dst=$$pkg/testdata/fuzz/$$target; mkdir -p $$dst; \
	  ls -S -r $$src | head -n $(FUZZ_KEEP) | while read f; do cp $$src/$$f $$dst/; done; \
	  echo "$$target: $$(ls $$dst | wc -l) inputs in $$dst"; \
	done
