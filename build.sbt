// The Scala shim: io.gophas.spark. Spark is provided: the shim compiles and
// tests against the jars of the Spark the tests run on (SPARK_HOME, which the
// Makefile points at the pinned pyspark package), so no second copy of Spark
// is downloaded. Only the Scala compiler and ScalaTest come from Maven Central.

ThisBuild / organization := "io.gophas"
ThisBuild / version := sys.env.getOrElse("GOPHAS_VERSION", "0.1.0")
ThisBuild / scalaVersion := "2.13.17"

lazy val sparkHome = settingKey[File]("the Spark installation compiled against")

lazy val root = (project in file("."))
  .settings(
    name := "gophas-spark",
    sparkHome := file(sys.env.getOrElse("SPARK_HOME", sys.error("SPARK_HOME is not set: run the build through `make`"))),
    Compile / scalaSource := baseDirectory.value / "scala-shim" / "src" / "main" / "scala",
    Compile / resourceDirectory := baseDirectory.value / "scala-shim" / "src" / "main" / "resources",
    // The example applications are part of the jar, so spark-submit runs them.
    Compile / unmanagedSourceDirectories += baseDirectory.value / "examples" / "mnist_mlp",
    // The Go binaries (built by `make build`) go into the jar as resources.
    Compile / unmanagedResourceDirectories += baseDirectory.value / "target" / "native",
    Test / scalaSource := baseDirectory.value / "scala-shim" / "src" / "test" / "scala",
    Test / resourceDirectory := baseDirectory.value / "scala-shim" / "src" / "test" / "resources",
    // Spark's jars, minus the Scala library sbt already provides.
    Compile / unmanagedJars ++= ((sparkHome.value / "jars") * "*.jar").get
      .filterNot(_.getName.startsWith("scala-"))
      .classpath,
    libraryDependencies += "org.scalatest" %% "scalatest" % "3.2.19" % Test,
    scalacOptions ++= Seq("-deprecation", "-feature", "-unchecked", "-Xlint", "-Werror", "-release", "17"),
    Compile / packageBin / artifactPath := baseDirectory.value / "dist" / s"gophas-spark_2.13-${version.value}.jar",
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
    Test / envVars ++= sys.env.filter { case (k, _) => k.startsWith("GOPHAS_") || k == "SPARK_HOME" }
  )
