# The PySpark package (python/, package gophas): its tests and its install.
#
#   make test-python          pytest on a local[2] Spark (the package, every
#                             mode and frequency from Python, Keras models in
#                             and out, Scala <-> Python save/load, the MNIST
#                             example under spark-submit and python); also
#                             checks `pip install ./python`
#   make test-python-install  `pip install ./python` into a scratch venv
#                             carries every Spark line's jar, and a session
#                             started with gophas.configure gets its line's
#                             jar and reaches the shim (on 3.5 and 4.3)
#
# Keras runs on its numpy backend (KERAS_BACKEND=numpy) in the tests: it
# builds, compiles and predicts; Gophas trains.

PY_SCRATCH := $(CURDIR)/.cache/venv-pip-check

.PHONY: test-python test-python-install

test-python: $(JARS_STAMP) $(VENV_STAMP) mnist-data test-python-install
	$(MNIST_ENV) cd python && KERAS_BACKEND=numpy GOPHAS_JAR=$(GOPHAS_JAR) $(PY) -m pytest -q -p no:cacheprovider --durations=10 \
	  --ignore=tests/smoke tests

# The package is built once and checked on the default line and on the
# oldest (the one Scala 2.12 line), each line's pyspark on the PYTHONPATH.
PY_CHECK_LINES := $(sort $(DEFAULT_LINE) $(firstword $(LINES)))
test-python-install: $(JARS_STAMP) $(foreach l,$(PY_CHECK_LINES),$(STAMP_$(l)))
	rm -rf $(PY_SCRATCH) python/build python/gophas.egg-info
	python3 -m venv $(PY_SCRATCH)
	$(PY_SCRATCH)/bin/pip install -q --disable-pip-version-check --no-deps ./python
	rm -rf python/build python/gophas.egg-info
	@set -o pipefail; for site in $(foreach l,$(PY_CHECK_LINES),$(VENV_$(l))/lib/$(PYTHON_DIR)/site-packages); do \
	  (cd /tmp && env -u GOPHAS_JAR PYTHONPATH=$$site SPARK_HOME=$$site/pyspark $(PY_SCRATCH)/bin/python \
	    $(CURDIR)/python/tests/check_install.py $(CURDIR)/dist $(CURDIR)/examples/mnist_mlp/model.json 2>&1 \
	    | grep -v -e WARN -e log4j -e setLogLevel) || exit 1; \
	done
