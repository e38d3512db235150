package protocol

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/ps"
)

const scalaFile = "../scala-shim/src/main/scala/io/gophas/spark/Protocol.scala"

func readScala(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(scalaFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// scalaVal returns the right-hand side of `val name: T = ...` in src.
func scalaVal(t *testing.T, src, name string) string {
	t.Helper()
	m := regexp.MustCompile(`val ` + name + `: \w+ = (.+)\n`).FindStringSubmatch(src)
	if m == nil {
		t.Errorf("Protocol.scala has no val %s", name)
		return ""
	}
	return m[1]
}

// scalaObject returns the string values of `object name { val X: String =
// "v" ... }` in src, in order.
func scalaObject(t *testing.T, src, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)object ` + name + ` \{(.*?)\n  \}`).FindStringSubmatch(src)
	if m == nil {
		t.Errorf("Protocol.scala has no object %s", name)
		return nil
	}
	var out []string
	for _, v := range regexp.MustCompile(`val \w+: String = "([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, v[1])
	}
	return out
}

// jsonNames returns the JSON names of v's struct fields, embedded structs
// flattened, in order.
func jsonNames(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous {
			out = append(out, jsonNames(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// TestScalaProtocolMirror checks that io.gophas.spark.Protocol, the Scala
// mirror of this package, holds the same values: constants, header keys,
// output schemas, ready-line keys, control commands and their fields, the
// stats record and the inspect line.
func TestScalaProtocolMirror(t *testing.T) {
	src := readScala(t)
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
		{"DefaultPartition", strconv.Itoa(DefaultPartition)},
		{"TrainStateKey", q(TrainStateKey)},
		{"WeightKey", q(WeightKey)},
		{"TokenEnv", q(TokenEnv)},
		{"CmdLoad", q(CmdLoad)},
		{"CmdSave", q(CmdSave)},
		{"CmdEpoch", q(CmdEpoch)},
		{"CmdStats", q(CmdStats)},
		{"CmdForget", q(CmdForget)},
		{"CmdExport", q(CmdExport)},
		{"CmdImport", q(CmdImport)},
		{"CmdSteps", q(CmdSteps)},
		{"LabelClassIndex", q(string(gokernel.ClassIndex))},
		{"LabelCategorical", q(string(gokernel.Categorical))},
		{"LabelBinary", q(string(gokernel.Binary))},
		{"LabelValue", q(string(gokernel.Value))},
	} {
		if got := scalaVal(t, src, tt.name); got != tt.want {
			t.Errorf("Protocol.scala %s = %s; Go says %s", tt.name, got, tt.want)
		}
	}
	if MaxHeaderBytes != 1<<20 {
		t.Errorf("MaxHeaderBytes = %d; the mirror check above assumes 1 << 20", MaxHeaderBytes)
	}
	if got := len(Commands); got != 8 {
		t.Errorf("Go has %d control commands; the mirror checks 8", got)
	}

	for _, tt := range []struct {
		object string
		typ    reflect.Type
	}{
		{"HeaderKeys", reflect.TypeFor[Header]()},
		{"ReadyKeys", reflect.TypeFor[Ready]()},
		{"CommandKeys", reflect.TypeFor[Command]()},
		{"AnswerKeys", reflect.TypeFor[Answer]()},
		{"StatsKeys", reflect.TypeFor[ps.Stats]()},
		{"WorkerStatsKeys", reflect.TypeFor[ps.WorkerStats]()},
		{"InfoKeys", reflect.TypeFor[ModelInfo]()},
		{"InputInfoKeys", reflect.TypeFor[gokernel.InputInfo]()},
		{"OutputInfoKeys", reflect.TypeFor[gokernel.OutputInfo]()},
	} {
		got, want := scalaObject(t, src, tt.object), jsonNames(tt.typ)
		if !slices.Equal(got, want) {
			t.Errorf("Protocol.scala %s = %v; Go's %v has %v", tt.object, got, tt.typ, want)
		}
	}

	for _, mode := range Modes {
		class := strings.ToUpper(mode[:1]) + mode[1:] + "Header"
		if !regexp.MustCompile(`final case class `+class+`\(common: Common\b[^)]*\)\s+extends Header`).MatchString(src) ||
			!strings.Contains(src, "def mode: String = Mode"+strings.ToUpper(mode[:1])+mode[1:]+"\n") {
			t.Errorf("Protocol.scala has no typed header %s for mode %s", class, mode)
		}
	}
}

// sparkType is the Spark SQL type a Scala schema uses for an Arrow type.
var sparkType = map[arrow.Type]string{
	arrow.STRING: "StringType", arrow.INT32: "IntegerType", arrow.INT64: "LongType", arrow.FLOAT64: "DoubleType",
}

// TestScalaSchemaMirror checks the Scala StructTypes of the workers'
// answers against the Arrow schemas the workers write.
func TestScalaSchemaMirror(t *testing.T) {
	src := readScala(t)
	field := regexp.MustCompile(`StructField\("(\w+)", (\w+), nullable = (true|false)\)`)
	for name, schema := range map[string]*arrow.Schema{"DescribeSchema": DescribeSchema, "EvaluateSchema": EvaluateSchema, "TrainSchema": TrainSchema} {
		m := regexp.MustCompile(`(?s)val ` + name + `: StructType = StructType\(Seq\((.*?)\)\)\n`).FindStringSubmatch(src)
		if m == nil {
			t.Errorf("Protocol.scala has no %s", name)
			continue
		}
		got := field.FindAllStringSubmatch(m[1], -1)
		if len(got) != schema.NumFields() {
			t.Errorf("%s: Scala has %d fields; Go %d (%v)", name, len(got), schema.NumFields(), schema)
			continue
		}
		for i, f := range schema.Fields() {
			want := []string{f.Name, sparkType[f.Type.ID()], strconv.FormatBool(f.Nullable)}
			if !slices.Equal(got[i][1:], want) {
				t.Errorf("%s field %d: Scala %v; Go %v (%s)", name, i, got[i][1:], want, f.Type)
			}
		}
	}
}
