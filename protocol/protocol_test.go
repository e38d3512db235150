package protocol

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestScalaProtocolMirror checks that io.gophas.spark.Protocol, the Scala
// mirror of this package's protocol constants, holds the same values.
func TestScalaProtocolMirror(t *testing.T) {
	src, err := os.ReadFile("../scala-shim/src/main/scala/io/gophas/spark/Protocol.scala")
	if err != nil {
		t.Fatal(err)
	}
	scala := func(name string) string {
		m := regexp.MustCompile(`val ` + name + `: \w+ = (.+)\n`).FindSubmatch(src)
		if m == nil {
			t.Errorf("Protocol.scala has no val %s", name)
			return ""
		}
		return string(m[1])
	}
	q := strconv.Quote
	for _, tt := range []struct{ name, want string }{
		{"Version", strconv.Itoa(ProtocolVersion)},
		{"MaxHeaderBytes", "1 << 20"},
		{"ErrorPrefix", q(ErrorPrefix)},
		{"ExitOK", strconv.Itoa(ExitOK)},
		{"ExitError", strconv.Itoa(ExitError)},
		{"ExitUsage", strconv.Itoa(ExitUsage)},
		{"ModeEcho", q(ModeEcho)},
		{"ModeDescribe", q(ModeDescribe)},
		{"ModePredict", q(ModePredict)},
		{"ModeEvaluate", q(ModeEvaluate)},
		{"ModeTrain", q(ModeTrain)},
		{"DefaultFeaturesCol", q(DefaultFeaturesCol)},
		{"DefaultLabelCol", q(DefaultLabelCol)},
		{"DefaultPredictionCol", q(DefaultPredictionCol)},
	} {
		if got := scala(tt.name); got != tt.want {
			t.Errorf("Protocol.scala %s = %s; Go says %s", tt.name, got, tt.want)
		}
	}
	if MaxHeaderBytes != 1<<20 {
		t.Errorf("MaxHeaderBytes = %d; the mirror check above assumes 1 << 20", MaxHeaderBytes)
	}
}
