package org.apache.spark.ml.gophas

import org.apache.spark.ml.param.Params
import org.apache.spark.ml.util.{DefaultParamsReader, DefaultParamsWriter}
import org.apache.spark.sql.SparkSession

/**
 * Spark ML's own metadata format for a stage's params (the `metadata/` JSON
 * that `Pipeline.save` and `PipelineModel.load` read), which Spark keeps
 * `private[ml]`. With it a GophasModel saves and loads inside pipelines
 * like any built-in stage.
 */
object MLPersistence {
  def saveMetadata(instance: Params, path: String, spark: SparkSession): Unit =
    DefaultParamsWriter.saveMetadata(instance, path, spark)

  /** Reads the metadata at path (checking it belongs to className) and sets its params on instance. */
  def loadParams(instance: Params, path: String, spark: SparkSession, className: String): Unit =
    DefaultParamsReader.loadMetadata(path, spark, className).getAndSetParams(instance)
}
