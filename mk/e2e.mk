# End-to-end benchmark of SparkModel (issue: SparkModel):
#   make bench-e2e   full MNIST, the MLP, 5 epochs, batch 64, local[2]: fit
#                    and evaluate wall time and test accuracy per mode and
#                    push frequency, as a Markdown table
.PHONY: bench-e2e

bench-e2e: $(JAR) mnist-data
	$(MNIST_ENV) bash bench/e2e.sh
