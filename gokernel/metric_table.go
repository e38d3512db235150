package gokernel

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// rowMetric is the per-sample value of a mean metric: p is one output row;
// y the target row, or one integer label for a metric on sparse labels.
type rowMetric func(p, y []float32) float64

// metricState is a metric whose result is not the mean of a per-sample
// value: its state is a vector of sums that adds up over batches (and over
// the partitions of a distributed evaluation, exactly), and its result a
// function of the whole state. Sums carry it as the keys "<name>[<i>]".
type metricState interface {
	// size is the state's length for outputs of width m.
	size(m int) int
	// add adds rows×m outputs out with their targets y to state.
	add(state []float64, out, y []float32, rows, m int)
	// result is the metric of a state.
	result(state []float64, m int) float64
}

// metricDef is one Keras metric of metricTable: its names, whether it takes
// integer labels, and how its config (nil when named by a string: the
// defaults) makes it.
type metricDef struct {
	name    string   // Keras' default name, the History key of its class
	class   string   // Keras' class name
	aliases []string // other names Keras takes for it
	sparse  bool     // integer labels (with sparse_categorical_crossentropy)
	// make returns the metric for a config: a mean (rowMetric) or a state.
	make func(cfg *obj) (rowMetric, metricState, error)
}

// metricTable lists the metrics beyond the accuracies and the absolute and
// squared errors of loss.go.
var metricTable = []*metricDef{
	&mapeMetric,
	&topKMetric,
	&sparseTopKMetric,
	&rmseMetric,
	&aucMetric,
	&precisionMetric,
	&recallMetric,
	&r2Metric,
	&f1Metric,
}

// tableMetric finds a metric of metricTable by name, class or alias.
func tableMetric(name string) *metricDef {
	for _, d := range metricTable {
		if name == d.name || name == d.class || slices.Contains(d.aliases, name) {
			return d
		}
	}
	return nil
}

// supportedMetrics lists the metric names the kernel takes.
func supportedMetrics() []string {
	var names []string
	for k := range metricAliases {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, d := range metricTable {
		names = append(names, d.name)
	}
	return names
}

// spec makes a metricSpec of d named name from cfg (nil: the defaults).
func (d *metricDef) spec(name string, cfg *obj) (metricSpec, error) {
	mean, st, err := d.make(cfg)
	if err != nil {
		return metricSpec{}, err
	}
	return metricSpec{name: name, kind: metTable, def: d, mean: mean, st: st}, nil
}

// sparseLabels reports whether the metric takes integer labels.
func (ms metricSpec) sparseLabels() bool {
	if ms.def != nil {
		return ms.def.sparse
	}
	return ms.kind == metSparseCategoricalAccuracy
}

// metricSum returns Σ over the rows of a mean metric's per-sample value.
func (ms metricSpec) metricSum(out, y []float32, rows, m int, sparse bool) float64 {
	if ms.mean == nil {
		return ms.kind.metricSum(out, y, rows, m, sparse)
	}
	yw := m
	if sparse {
		yw = 1
	}
	var total float64
	for r := 0; r < rows; r++ {
		total += ms.mean(out[r*m:(r+1)*m], y[r*yw:(r+1)*yw])
	}
	return total
}

// stateKey is the Sums key of element i of a metric's state.
func stateKey(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// isStateKey reports whether a Sums key holds part of a metric's state.
func isStateKey(key string) bool { return strings.HasSuffix(key, "]") && strings.Contains(key, "[") }

// cfgNum reads a number of cfg (def when cfg is nil or has no such key).
func cfgNum(cfg *obj, key string, def float64) (float64, error) {
	if cfg == nil {
		return def, nil
	}
	return cfg.num(key, def)
}

// cfgInt reads an integer (or null: def) of cfg.
func cfgInt(cfg *obj, key string, def int) (int, error) {
	if cfg == nil || isNull(cfg.get(key)) {
		if cfg != nil {
			cfg.ignore(key)
		}
		return def, nil
	}
	v, ok, err := cfg.integer(key)
	if err != nil {
		return 0, err
	}
	if !ok {
		return def, nil
	}
	return int(v), nil
}

// cfgStr reads a string (or null: def) of cfg.
func cfgStr(cfg *obj, key, def string) (string, error) {
	if cfg == nil || isNull(cfg.get(key)) {
		if cfg != nil {
			cfg.ignore(key)
		}
		return def, nil
	}
	return cfg.str(key, def)
}

// cfgBool reads a boolean of cfg.
func cfgBool(cfg *obj, key string, def bool) (bool, error) {
	if cfg == nil {
		return def, nil
	}
	return cfg.boolean(key, def)
}

// cfgMustBe checks that cfg's key is absent or one of allowed.
func cfgMustBe(cfg *obj, key string, allowed ...string) error {
	if cfg == nil {
		return nil
	}
	return cfg.mustBe(key, allowed...)
}

// metricError is a config error of a metric.
func metricError(cfg *obj, format string, a ...any) error {
	if cfg == nil {
		return fmt.Errorf("gokernel: compile config: metric: "+format, a...)
	}
	return cfg.errf(format, a...)
}
