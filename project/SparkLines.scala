import java.io.File

import scala.io.Source

/** One Spark line Gophas builds a jar for (a line of spark-lines.txt): its Scala version is the one that Spark ships. */
final case class SparkLine(line: String, scalaVersion: String, pyspark: String) {
  /** 2.12, 2.13. */
  def scalaBinary: String = scalaVersion.split('.').take(2).mkString(".")

  /** The sbt project's name: spark35, spark43. */
  def id: String = "spark" + line.replace(".", "")

  /** The artifact's name, as Iceberg and Delta name theirs: gophas-spark-3.5_2.12. */
  def artifact: String = s"gophas-spark-${line}_$scalaBinary"

  /** The 4.x lines share the internals folder scala-shim/spark/v4. */
  def major: String = line.takeWhile(_ != '.')
}

object SparkLine {
  def read(file: File): Seq[SparkLine] = {
    val src = Source.fromFile(file, "UTF-8")
    try src.getLines().map(_.trim).filter(l => l.nonEmpty && !l.startsWith("#")).map { l =>
      l.split("\\s+") match {
        case Array(line, scala, pyspark) => SparkLine(line, scala, pyspark)
        case _ => sys.error(s"$file: cannot read '$l': want <line> <scala> <pyspark>")
      }
    }.toList
    finally src.close()
  }

  /**
   * The Spark of a pyspark version: the package's folder in the venv the
   * Makefile installs it into (.venv/pyspark-<version>), holding Spark's jars.
   */
  def sparkHome(repo: File, pyspark: String): File = {
    val venv = new File(repo, s".venv/pyspark-$pyspark")
    val lib = new File(venv, "lib")
    val found = Option(lib.listFiles()).toSeq.flatten.filter(_.getName.startsWith("python"))
      .map(p => new File(p, "site-packages/pyspark")).filter(p => new File(p, "jars").isDirectory)
    found.headOption.getOrElse(sys.error(
      s"no Spark $pyspark at $venv: the build runs through make, which installs the pinned pyspark there (make jars)"))
  }
}
