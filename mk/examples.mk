# The full examples of issues 13 and 14 on Spark from PySpark, each built in
# Keras as a user would and trained on local[2] through SparkModel: too slow
# for `make test` (minutes), so they are targets of their own.
#
#   make example-convnet  the Keras MNIST convnet (examples/mnist_convnet):
#                         12 epochs, batch 128, 2 workers; issue 13's bar
#                         is 99.0% test accuracy
#   make example-lstm     MNIST row by row through an LSTM(128)
#                         (examples/mnist_lstm): 8 epochs, batch 128, 2
#                         workers; issue 14's bar is 98.0%
#
# EXAMPLE_ARGS passes options to the script (--epochs, --workers, --mode,
# --frequency, --batch-size, --train-rows). Each prints a line per epoch and
# `Test accuracy: 0.xxxx`.

EXAMPLE_ARGS ?=
EXAMPLE_RUN = $(MNIST_ENV) PYTHONPATH=$(CURDIR)/python KERAS_BACKEND=numpy $(PY)

.PHONY: example-convnet example-lstm

example-convnet: $(JAR) $(VENV_STAMP) mnist-data
	$(EXAMPLE_RUN) examples/mnist_convnet/mnist_convnet.py $(EXAMPLE_ARGS)

example-lstm: $(JAR) $(VENV_STAMP) mnist-data
	$(EXAMPLE_RUN) examples/mnist_lstm/mnist_lstm.py $(EXAMPLE_ARGS)
