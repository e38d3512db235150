// The Scala shim, one jar per Spark line (spark-lines.txt), as Iceberg and
// Delta build theirs: dist/gophas-spark-<line>_<scala>-<version>.jar.
//
//  - core212, core213: the shim (scala-shim/src/main/scala) and the example
//    applications, compiled once per Scala version, against the oldest line
//    of that Scala version and with its Scala (what they call must exist on
//    every line);
//  - spark35 ... spark43: what touches Spark internals (the SparkLine
//    implementation, scala-shim/spark/), compiled against each line; a line's
//    jar holds its core's classes, its own and the Go binaries.
//
// Spark is provided: every project compiles against the jars of the pyspark
// package the Makefile installs for its line (.venv/pyspark-<version>), so
// no second copy of Spark is downloaded. Only the Scala compilers and
// ScalaTest come from Maven Central.

ThisBuild / organization := "io.gophas"
ThisBuild / version := sys.env.getOrElse("GOPHAS_VERSION", "0.1.0")

lazy val repo = file(".").getAbsoluteFile
lazy val lines: Seq[SparkLine] = SparkLine.read(repo / "spark-lines.txt")
lazy val defaultLine: SparkLine = lines.last
lazy val shim = repo / "scala-shim"

/** Spark's jars for a line, minus the Scala library sbt already provides. */
def sparkJars(l: SparkLine): Def.Initialize[Task[Classpath]] = Def.task {
  ((SparkLine.sparkHome(repo, l.pyspark) / "jars") * "*.jar").get
    .filterNot(f => Seq("scala-library-", "scala-reflect-", "scala-compiler-").exists(f.getName.startsWith))
    .classpath
}

lazy val common = Seq(
  scalacOptions ++= Seq("-deprecation", "-feature", "-unchecked", "-Xlint", "-Werror", "-release", "17"),
  Compile / unmanagedSourceDirectories := Nil,
  Compile / unmanagedResourceDirectories := Nil,
  Test / unmanagedSourceDirectories := Nil,
  Test / unmanagedResourceDirectories := Nil,
  Compile / packageDoc / publishArtifact := false,
  Compile / packageSrc / publishArtifact := false
)

/** BuildInfo: the version and the lines Gophas has jars for, so the shim can name them. */
def buildInfo = Def.task {
  val out = (Compile / sourceManaged).value / "io" / "gophas" / "spark" / "BuildInfo.scala"
  val ls = lines.map(l => s"""("${l.line}", "${l.scalaBinary}")""").mkString(", ")
  IO.write(out,
    s"""package io.gophas.spark
       |
       |/** Made by build.sbt from spark-lines.txt. */
       |private[spark] object BuildInfo {
       |  val Version = "${version.value}"
       |
       |  /** The Spark lines Gophas has a jar for, oldest first, with their Scala versions. */
       |  val Lines: Seq[(String, String)] = List($ls)
       |}
       |""".stripMargin)
  Seq(out)
}

def coreProject(scalaBinary: String): Project = {
  val compileLine = lines.find(_.scalaBinary == scalaBinary).get
  Project("core" + scalaBinary.replace(".", ""), file(s"target/sbt/core-$scalaBinary"))
    .settings(common: _*)
    .settings(
      name := s"gophas-core_$scalaBinary",
      // The oldest Scala of the series: what these classes call exists in every line's scala-library.
      scalaVersion := compileLine.scalaVersion,
      Compile / unmanagedSourceDirectories ++= Seq(shim / "src" / "main" / "scala", repo / "examples" / "mnist_mlp"),
      // Spark on the class path of this project alone (unmanagedJars would
      // reach the lines' class paths too, beside their own Spark).
      Compile / unmanagedClasspath ++= sparkJars(compileLine).value,
      Compile / sourceGenerators += buildInfo.taskValue
    )
}

lazy val core212 = coreProject("2.12")
lazy val core213 = coreProject("2.13")

def lineProject(l: SparkLine): Project = {
  val core = if (l.scalaBinary == "2.12") core212 else core213
  val isDefault = l == defaultLine
  Project(l.id, file(s"target/sbt/${l.id}"))
    .dependsOn(core)
    .settings(common: _*)
    .settings(
      name := l.artifact,
      // The Scala this Spark ships: its tests run on the scala-library the line runs on.
      scalaVersion := l.scalaVersion,
      Compile / unmanagedSourceDirectories ++=
        Seq(shim / "spark" / "common", shim / "spark" / s"v${l.major}", shim / "spark" / s"v${l.line}").filter(_.isDirectory),
      Compile / unmanagedJars ++= sparkJars(l).value,
      Compile / sourceGenerators += Def.task {
        val out = (Compile / sourceManaged).value / "org" / "apache" / "spark" / "sql" / "gophas" / "LineInfo.scala"
        IO.write(out,
          s"""package org.apache.spark.sql.gophas
             |
             |/** Made by build.sbt: the Spark line this code is compiled against. */
             |private[gophas] object LineInfo {
             |  val Line = "${l.line}"
             |}
             |""".stripMargin)
        Seq(out)
      }.taskValue,
      // The Go binaries (built by `make build`) go into the jar as resources.
      Compile / unmanagedResourceDirectories += repo / "target" / "native",
      // The jar holds the core's classes too: one jar per line is all a cluster needs.
      Compile / packageBin / mappings ++= (core / Compile / packageBin / mappings).value,
      Compile / packageBin / artifactPath := repo / "dist" / s"${l.artifact}-${version.value}.jar",
      // Every line runs the smoke suite; the default line runs the full suites too.
      Test / unmanagedSourceDirectories ++= Seq(shim / "src" / "smoke" / "scala") ++
        (if (isDefault) Seq(shim / "src" / "test" / "scala") else Nil),
      Test / unmanagedResourceDirectories += shim / "src" / "test" / "resources",
      Test / packageBin / artifactPath := repo / "target" / s"${l.artifact}-${version.value}-tests.jar",
      libraryDependencies += "org.scalatest" %% "scalatest" % "3.2.19" % Test,
      Test / fork := true,
      Test / parallelExecution := false,
      Test / javaOptions ++= Seq(
        "-Xmx3g",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
        "--add-opens=java.base/java.io=ALL-UNNAMED",
        "--add-opens=java.base/java.net=ALL-UNNAMED",
        "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "--add-opens=java.base/java.util=ALL-UNNAMED",
        "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
        "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
        "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
        "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
        "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
        "-Djdk.reflect.useDirectMethodHandle=false",
        "-Dio.netty.tryReflectionSetAccessible=true"
      ),
      Test / envVars ++= sys.env.filter { case (k, _) => k.startsWith("GOPHAS_") } +
        ("SPARK_HOME" -> SparkLine.sparkHome(repo, l.pyspark).getPath) + ("GOPHAS_SPARK_LINE" -> l.line) + ("GOPHAS_REPO" -> repo.getPath)
    )
}

lazy val spark35 = lineProject(lines.find(_.line == "3.5").get)
lazy val spark40 = lineProject(lines.find(_.line == "4.0").get)
lazy val spark41 = lineProject(lines.find(_.line == "4.1").get)
lazy val spark42 = lineProject(lines.find(_.line == "4.2").get)
lazy val spark43 = lineProject(lines.find(_.line == "4.3").get)

// The root builds nothing itself: make names the line projects it needs.
lazy val root = (project in file("."))
  .aggregate(core212, core213, spark35, spark40, spark41, spark42, spark43)
  .settings(
    Compile / sources := Nil,
    Test / sources := Nil,
    publish / skip := true
  )
