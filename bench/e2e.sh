#!/usr/bin/env bash
# bench-e2e: the MNIST MLP example on local[2], full MNIST, 5 epochs, batch 64,
# for each mode and push frequency: wall time of fit (and of it, the time
# outside the epochs' Spark jobs: checking and caching the data, starting the
# server, merging, saving) and of evaluate, and the test accuracy, as a Markdown table. Run through `make bench-e2e`.
set -euo pipefail
: "${SPARK_HOME:?run through make bench-e2e}" "${GOPHAS_JAR:?}" "${GOPHAS_MNIST_DIR:?}"
epochs=${EPOCHS:-5}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
echo "| mode | push every | fit (s) | outside the epochs' jobs (s) | evaluate (s) | test accuracy |"
echo "|---|---|---|---|---|---|"
for freq in epoch batch; do
  for mode in synchronous asynchronous hogwild; do
    out="$log/$mode-$freq.out"
    if ! "$SPARK_HOME/bin/spark-submit" --master 'local[2]' --driver-memory 4g \
        --conf spark.ui.enabled=false \
        --class io.gophas.spark.examples.MnistMlp "$GOPHAS_JAR" \
        --data "$GOPHAS_MNIST_DIR" --model examples/mnist_mlp/model.json \
        --mode "$mode" --frequency "$freq" --epochs "$epochs" --batch-size 64 \
        >"$out" 2>"$log/$mode-$freq.err"; then
      echo "$mode/$freq failed; stderr tail:" >&2
      tail -20 "$log/$mode-$freq.err" >&2
      exit 1
    fi
    acc=$(sed -n 's/^test accuracy: //p' "$out")
    # time: fit F s (J s in the epochs' Spark jobs, O s outside them), evaluate E s (...)
    fit=$(sed -n 's/^time: fit \([0-9.]*\) s .*/\1/p' "$out")
    outside=$(sed -n 's/^time: fit .*, \([0-9.]*\) s outside them.*/\1/p' "$out")
    ev=$(sed -n 's/^time: .*, evaluate \([0-9.]*\) s.*/\1/p' "$out")
    echo "| $mode | $freq | $fit | $outside | $ev | $acc |"
  done
done
