package io.gophas.spark

/**
 * The executor pipe protocol: the Scala mirror of Go's `bridge/protocol.go`,
 * the one definition on this side. Keep the two in step.
 *
 * A task on the worker's stdin: a 4-byte big-endian length N, N bytes of UTF-8
 * JSON (the header), then one Arrow IPC stream. The worker answers on stdout
 * with one Arrow IPC stream and nothing else; logs go to stderr; on failure it
 * exits non-zero and its last stderr line starts with [[ErrorPrefix]].
 */
object Protocol {
  /** Must equal the `protocol` that `gophas version` reports. */
  val Version: Int = 2

  /** Bound on the JSON header, as the worker enforces it. */
  val MaxHeaderBytes: Int = 1 << 20

  /** Starts the last stderr line of a failed worker. */
  val ErrorPrefix: String = "gophas: "

  /** Exit statuses of the gophas binary. */
  val ExitOK: Int = 0
  val ExitError: Int = 1
  val ExitUsage: Int = 2

  /** Worker modes. */
  val ModeEcho: String = "echo"
  val ModeDescribe: String = "describe"
  val ModePredict: String = "predict"
  val ModeEvaluate: String = "evaluate"
  val ModeTrain: String = "train"

  val DefaultFeaturesCol: String = "features"
  val DefaultLabelCol: String = "label"
  val DefaultPredictionCol: String = "prediction"
}
