"""Pipe throughput: Gophas' echo worker beside PySpark's own mapInArrow identity.

Run by `make bench-pipe` through spark-submit with the Gophas jar:

    spark-submit --master 'local[2]' --jars dist/gophas-spark-<line>_<scala>-<v>.jar \
        bench/pipe/bench_pipe.py [--rows 1000000] [--width 784] [--repeat 3]

Both paths read the same generated DataFrame (an array<float> column of
`width` values and a label; "generate only" times making it alone) and write every row back; each run is forced to
completion with a count. Prints one line per run and a median table.
"""

import argparse
import statistics
import time

from pyspark.sql import SparkSession, functions as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--width", type=int, default=784)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--partitions", type=int, default=2)
    a = p.parse_args()

    spark = SparkSession.builder.appName("gophas bench-pipe").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # array_repeat keeps the generation cheap, so the pipe dominates the time.
    df = spark.range(0, a.rows, 1, a.partitions).select(
        F.array_repeat(((F.col("id") % 1021) / 7.0).cast("float"), a.width).alias("features"),
        (F.col("id") % 10).cast("double").alias("label"))
    schema = df.schema
    jvm = spark._jvm

    def generate_only():
        return df.select(F.size("features").alias("n")).agg(F.sum("n")).collect()[0][0]

    def gophas_echo():
        out = jvm.io.gophas.spark.Gophas.pipe(df._jdf, "echo")
        return out.count()

    def pyspark_identity():
        return df.mapInArrow(lambda batches: batches, schema).count()

    mb = a.rows * (a.width * 4 + 8) / 1e6
    results = {}
    for name, fn in [("generate only", generate_only), ("gophas echo", gophas_echo), ("pyspark mapInArrow", pyspark_identity)]:
        times = []
        for i in range(a.repeat):
            t0 = time.perf_counter()
            n = fn()
            dt = time.perf_counter() - t0
            times.append(dt)
            print(f"run {name} #{i + 1}: {dt:.2f} s ({n})", flush=True)
        results[name] = statistics.median(times)

    print()
    print(f"{a.rows} rows x {a.width} float32 (+ a double label), {a.partitions} partitions, median of {a.repeat}")
    print(f"| path | median s | rows/s | MB/s |")
    print(f"|---|---|---|---|")
    for name, t in results.items():
        print(f"| {name} | {t:.2f} | {a.rows / t:,.0f} | {mb / t:,.0f} |")
    g, py = results["gophas echo"], results["pyspark mapInArrow"]
    print(f"\ngophas / pyspark throughput ratio: {py / g:.2f}x")
    spark.stop()


if __name__ == "__main__":
    main()
