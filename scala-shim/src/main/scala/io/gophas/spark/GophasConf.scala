package io.gophas.spark

import org.apache.spark.network.util.JavaUtils
import org.apache.spark.sql.SparkSession

/**
 * The `spark.gophas.*` configuration keys, their defaults, and their parsing.
 * They are read from the session's runtime configuration when a job starts
 * (so `spark.conf.set` works between jobs), which falls back to the
 * application's SparkConf.
 */
object GophasConf {
  /** Path of a gophas binary to use instead of the one embedded in the jar. */
  val Binary = "spark.gophas.binary"

  /** Rows per Arrow batch sent to a worker (default 10000). */
  val BatchRows = "spark.gophas.batchRows"
  val DefaultBatchRows = 10000

  /** Bytes per Arrow batch sent to a worker, a cap beside batchRows (default 64m). */
  val BatchBytes = "spark.gophas.batchBytes"
  val DefaultBatchBytes: Long = 64L << 20

  /**
   * The longest a pipe may go without progress (no bytes read or written by
   * either side) before the worker is killed and the task fails (default 600s).
   */
  val IoTimeout = "spark.gophas.ioTimeout"
  val DefaultIoTimeoutMs: Long = 600000L

  /** Directory to unpack the embedded binary into (default: java.io.tmpdir). */
  val UnpackDir = "spark.gophas.unpackDir"

  /**
   * The address the parameter server binds and executors reach it at
   * (default: `spark.driver.host`).
   */
  val DriverHost = "spark.gophas.driverHost"

  /**
   * Serve the parameter server over TLS 1.3 with a self-signed certificate
   * made per fit, whose SHA-256 fingerprint the workers pin (it travels in
   * their task header, beside the job's token) (default true). `false` sends
   * the token and the weights in clear text: for trusted networks only.
   */
  val Tls = "spark.gophas.tls"
  val DefaultTls = true

  /**
   * How long a synchronous round may stay open after its first push before
   * the fit fails naming the workers that did not push (default 30min).
   */
  val RoundTimeout = "spark.gophas.roundTimeout"
  val DefaultRoundTimeoutMs: Long = 30L * 60 * 1000

  /**
   * Bytes of rows a training worker shuffles at once (default 256m): a
   * partition that fits is shuffled whole each epoch, as Keras does; a
   * larger one streams through in shuffled blocks, never held whole in memory.
   */
  val ShuffleBufferBytes = "spark.gophas.shuffleBufferBytes"
  val DefaultShuffleBufferBytes: Long = 256L << 20

  /**
   * Whether the asynchronous and hogwild modes add each worker's delta
   * scaled by 1/workers (`true`) or whole (`false`, Elephas' rule). Default:
   * scaled when workers push every epoch, whole when they push every batch.
   * Whole epoch deltas from workers that started from the same weights add
   * up to an extrapolation, not an average: measured on the MNIST example
   * with 2 workers, 94.7% test accuracy whole against 97.9% scaled.
   */
  val ScaleDeltas = "spark.gophas.scaleDeltas"

  /**
   * A directory (any Hadoop URI) where every fit writes a checkpoint at the
   * end of each epoch and from which a fit started again after a failure
   * resumes (as Keras' BackupAndRestore callback, which sets it for one fit);
   * removed when the fit completes. Default: none.
   */
  val CheckpointDir = "spark.gophas.checkpointDir"

  /** What a fit needs to know of the configuration, beside Settings. */
  private[spark] final case class FitSettings(driverHost: String, tls: Boolean, roundTimeoutMs: Long, shuffleBufferBytes: Long,
      scaleDeltas: Option[Boolean], checkpointDir: Option[String] = None)

  /** The value of key parsed by f, or default when unset; a value f cannot parse is an error naming the key. */
  private def parse[T](spark: SparkSession, key: String, default: T)(f: String => T): T = spark.conf.getOption(key) match {
    case None => default
    case Some(v) =>
      try f(v.trim) catch {
        case e: IllegalArgumentException => throw new GophasException(s"$key: cannot parse '$v': ${e.getMessage}", e)
      }
  }

  private[spark] def fitSettings(spark: SparkSession): FitSettings = {
    val conf = spark.conf
    val host = conf.getOption(DriverHost).orElse(conf.getOption("spark.driver.host")).getOrElse("127.0.0.1")
    val tls = parse(spark, Tls, DefaultTls)(_.toBoolean)
    val round = parse(spark, RoundTimeout, DefaultRoundTimeoutMs)(JavaUtils.timeStringAsMs)
    if (round <= 0) throw new GophasException(s"$RoundTimeout must be positive, got ${round}ms")
    val shuffle = parse(spark, ShuffleBufferBytes, DefaultShuffleBufferBytes)(JavaUtils.byteStringAsBytes)
    if (shuffle <= 0) throw new GophasException(s"$ShuffleBufferBytes must be positive, got $shuffle")
    val scale = conf.getOption(ScaleDeltas).map(v => parse(spark, ScaleDeltas, false)(_.toBoolean))
    FitSettings(host, tls, round, shuffle, scale, conf.getOption(CheckpointDir).map(_.trim).filter(_.nonEmpty))
  }

  /** What a job's tasks need to know of the configuration; serializable. */
  private[spark] final case class Settings(
      batchRows: Int,
      batchBytes: Long,
      ioTimeoutMs: Long,
      binary: Option[String],
      unpackDir: Option[String])

  private[spark] def settings(spark: SparkSession): Settings = {
    val conf = spark.conf
    val rows = parse(spark, BatchRows, DefaultBatchRows)(_.toInt)
    if (rows <= 0) throw new GophasException(s"$BatchRows must be positive, got $rows")
    val bytes = parse(spark, BatchBytes, DefaultBatchBytes)(JavaUtils.byteStringAsBytes)
    if (bytes <= 0) throw new GophasException(s"$BatchBytes must be positive, got $bytes")
    val timeout = parse(spark, IoTimeout, DefaultIoTimeoutMs)(JavaUtils.timeStringAsMs)
    if (timeout <= 0) throw new GophasException(s"$IoTimeout must be positive, got ${timeout}ms")
    Settings(rows, bytes, timeout, conf.getOption(Binary), conf.getOption(UnpackDir))
  }
}
