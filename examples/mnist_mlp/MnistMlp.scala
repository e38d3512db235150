package io.gophas.spark.examples

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Paths}

import org.apache.spark.sql.SparkSession

import io.gophas.spark.{ReadableConsole, SparkModel}

/**
 * The MNIST MLP (784-128-128-10, Adam, categorical cross-entropy) trained on
 * Spark with Gophas: loads MNIST from the GoMNIST files into DataFrames,
 * fits, evaluates on the 10k test images and prints `test accuracy: 0.xxxx`
 * and the time taken.
 *
 * {{{
 * spark-submit --class io.gophas.spark.examples.MnistMlp gophas-spark-<line>_<scala>-<v>.jar \
 *   [--data DIR] [--model examples/mnist_mlp/model.json] [--epochs 10] [--batch-size 64] \
 *   [--mode asynchronous] [--frequency epoch] [--workers N] [--save DIR] [--verbose 1]
 * }}}
 */
object MnistMlp {
  def main(args: Array[String]): Unit = {
    val opts = args.grouped(2).map {
      case Array(k, v) if k.startsWith("--") => k.stripPrefix("--") -> v
      case other => throw new IllegalArgumentException(s"unexpected arguments ${other.mkString(" ")}: use --name value pairs")
    }.toMap
    val known = Set("data", "model", "epochs", "batch-size", "mode", "frequency", "workers", "save", "validation-split", "verbose")
    opts.keys.filterNot(known).foreach(k => throw new IllegalArgumentException(s"unknown option --$k (options: ${known.toSeq.sorted.mkString(", ")})"))
    // Spark WARN and up, its progress bar and Gophas' own lines, unless your log4j2 configuration says otherwise.
    val spark = ReadableConsole(SparkSession.builder().appName("gophas MNIST MLP")).getOrCreate()
    try {
      val dir = Mnist.dir(opts.get("data"))
      val workers = opts.get("workers").map(_.toInt).getOrElse(spark.sparkContext.defaultParallelism)
      val spec = new String(Files.readAllBytes(Paths.get(opts.getOrElse("model", "examples/mnist_mlp/model.json"))), StandardCharsets.UTF_8)
      val train = Mnist.frame(spark, Mnist.read(dir, train = true), workers)
      val test = Mnist.frame(spark, Mnist.read(dir, train = false), workers)

      val model = SparkModel.fromSpec(spec, seed = 1L,
        mode = opts.getOrElse("mode", SparkModel.Asynchronous), frequency = opts.getOrElse("frequency", SparkModel.Epoch),
        numWorkers = workers, batchSize = opts.get("batch-size").map(_.toInt).getOrElse(64))
      val start = System.nanoTime()
      model.fit(train, epochs = opts.get("epochs").map(_.toInt).getOrElse(10),
        validationSplit = opts.get("validation-split").map(_.toDouble).getOrElse(0.0), verbose = opts.get("verbose").map(_.toInt).getOrElse(1))
      val fitSeconds = (System.nanoTime() - start) / 1e9
      val evalStart = System.nanoTime()
      val scores = model.evaluate(test)
      val evalSeconds = (System.nanoTime() - evalStart) / 1e9
      opts.get("save").foreach(model.save)
      println(f"test loss: ${scores("loss")}%.4f")
      println(f"test accuracy: ${scores("accuracy")}%.4f")
      val jobs = model.lastFitPhases.getOrElse("epoch jobs", 0.0)
      println(f"time: fit $fitSeconds%.1f s ($jobs%.1f s in the epochs' Spark jobs, ${fitSeconds - jobs}%.1f s outside them), " +
        f"evaluate $evalSeconds%.1f s (${model.mode}, ${model.frequency}, $workers workers)")
    } finally spark.stop()
  }
}
