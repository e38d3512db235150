package io.gophas.spark

import org.apache.logging.log4j.{Level, LogManager}
import org.apache.logging.log4j.core.LoggerContext
import org.apache.logging.log4j.core.config.Configurator
import org.apache.spark.internal.Logging
import org.apache.spark.sql.SparkSession

/**
 * ReadableConsole gives an application's console what a person wants to
 * read while a model trains: Spark's WARN and above, Spark's console
 * progress bar, and Gophas' own lines (a fit's start line, one line per
 * epoch, the result), instead of hundreds of INFO lines.
 *
 * A user's own logging wins: the levels change only while Spark runs on its
 * built-in log4j2 defaults (no log4j2.properties of the user's on the class
 * path or in SPARK_CONF_DIR, no -Dlog4j2.configurationFile), and the
 * progress bar is only turned on when spark.ui.showConsoleProgress is not
 * set already.
 *
 * {{{
 * val spark = ReadableConsole(SparkSession.builder().appName("my job")).getOrCreate()
 * }}}
 */
object ReadableConsole extends Logging {
  private val ProgressBar = "spark.ui.showConsoleProgress"

  /** Sets up the console, then returns builder with the progress bar on; call it before the session starts. */
  def apply(builder: SparkSession.Builder): SparkSession.Builder = {
    quietSparkDefaults()
    if (sys.props.contains(ProgressBar)) builder else builder.config(ProgressBar, "true")
  }

  /**
   * Sets the root log level to WARN when Spark's own log4j2 defaults are in
   * use; returns whether it did. Spark loads its defaults when it first
   * logs, so this makes it log first.
   */
  def quietSparkDefaults(): Boolean = {
    initializeLogIfNecessary(false)
    if (!sparkDefaults) false
    else {
      Configurator.setRootLevel(Level.WARN)
      true
    }
  }

  /** True while log4j2 runs on the configuration Spark ships (org/apache/spark/log4j2-*.properties). */
  private def sparkDefaults: Boolean = LogManager.getContext(false) match {
    case ctx: LoggerContext =>
      val source = Option(ctx.getConfiguration.getConfigurationSource).flatMap(s => Option(s.getLocation)).getOrElse("")
      source.contains("org/apache/spark/log4j2")
    case _ => false
  }
}
