package io.gophas.spark

import org.scalatest.funsuite.AnyFunSuite

/**
 * SparkLine's check of the running Spark against the jar's line (the
 * smoke suite of every line checks the real one; the PySpark smoke suite
 * starts a session with another line's jar and sees this message).
 */
class SparkLineSuite extends AnyFunSuite {
  private val v = BuildInfo.Version

  test("the same line passes, whatever the patch release or vendor suffix") {
    assert(SparkLine.mismatch("4.3", "4.3.0").isEmpty)
    assert(SparkLine.mismatch("3.5", "3.5.1-amzn-0").isEmpty)
  }

  test("another supported line is told the jar to use") {
    assert(SparkLine.mismatch("4.3", "4.2.1").contains(
      s"gophas: gophas-spark-4.3_2.13-$v.jar is built for Spark 4.3, but this is Spark 4.2.1: use gophas-spark-4.2_2.13-$v.jar instead"))
    assert(SparkLine.mismatch("4.0", "3.5.7").exists(_.endsWith(s"use gophas-spark-3.5_2.12-$v.jar instead")))
  }

  test("a Spark outside the matrix is told what is supported") {
    for (running <- Seq("3.4.1", "4.4.0", "5.0.0-preview1"))
      assert(SparkLine.mismatch("4.3", running).contains(
        s"gophas: gophas-spark-4.3_2.13-$v.jar is built for Spark 4.3, but this is Spark $running: " +
          s"Gophas has no jar for Spark ${running.split('.').take(2).mkString(".")}; " +
          "it supports Spark 3.5 (Scala 2.12), 4.0, 4.1, 4.2 and 4.3 (Scala 2.13)"))
  }

  test("the running Spark is this jar's line") {
    assert(SparkLine.get.line == org.apache.spark.SPARK_VERSION.split('.').take(2).mkString("."))
  }
}
