# The PySpark package (python/, package gophas): its tests and its install.
#
#   make test-python          pytest on a local[2] Spark (the package, every
#                             mode and frequency from Python, Keras models in
#                             and out, Scala <-> Python save/load, the MNIST
#                             example under spark-submit and python); also
#                             checks `pip install ./python`
#   make test-python-install  `pip install ./python` into a scratch venv
#                             carries the jar, and a session started with
#                             gophas.configure reaches the shim
#
# Keras runs on its numpy backend (KERAS_BACKEND=numpy) in the tests: it
# builds, compiles and predicts; Gophas trains.

PY_SCRATCH := $(CURDIR)/.cache/venv-pip-check
PY_SITE := $(VENV)/lib/python3.11/site-packages

.PHONY: test-python test-python-install

test-python: $(JAR) $(VENV_STAMP) mnist-data test-python-install
	$(MNIST_ENV) cd python && KERAS_BACKEND=numpy GOPHAS_JAR=$(GOPHAS_JAR) $(PY) -m pytest -q -p no:cacheprovider --durations=10 tests

test-python-install: $(JAR) $(VENV_STAMP)
	rm -rf $(PY_SCRATCH) python/build python/gophas.egg-info
	python3 -m venv $(PY_SCRATCH)
	$(PY_SCRATCH)/bin/pip install -q --disable-pip-version-check --no-deps ./python
	rm -rf python/build python/gophas.egg-info
	cd /tmp && env -u GOPHAS_JAR PYTHONPATH=$(PY_SITE) $(PY_SCRATCH)/bin/python $(CURDIR)/python/tests/check_install.py \
	  $(GOPHAS_JAR) $(CURDIR)/examples/mnist_mlp/model.json 2>&1 | grep -v -e WARN -e log4j -e setLogLevel; exit $${PIPESTATUS[0]}
