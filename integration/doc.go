// Package integration holds the end-to-end tests of Gophas against a real
// local Spark: they submit jobs with spark-submit against the built jar, as
// a user would, and compare the answers with known results. They carry the
// build tag integration and need SPARK_HOME and the jars; `make test` builds
// and provides both:
//
//	make test-integration
//
// Without SPARK_HOME they skip with a message saying so; CI always has it.
package integration
