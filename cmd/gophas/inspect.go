package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

// inspectConfig is what `gophas inspect` looks at.
type inspectConfig struct {
	// Model is a spec file (Keras model.to_json(), or {"model", "compile"})
	// or a model directory (model.json, and model.safetensors when it has
	// weights). Required.
	Model string
	// Seed seeds the initializers when the model has no weights; default 0.
	Seed int64
	// Out, when set, is the directory a complete model (model.json and
	// model.safetensors) is written to: the model's own weights, or freshly
	// initialized ones.
	Out string
	// Compile, when any field is set, overrides the spec's compile config
	// (gokernel.Spec.Compile: loss, optimizer, learning rate, metrics)
	// before the model is described and written.
	Compile gokernel.CompileOptions
	// Sums, when set, is a JSON file of sets of sums merged over partitions
	// (as the evaluate and train outputs carry them, summed per key):
	// [{"count": rows, "sums": {key: sum, ...}}, ...]. Their results (the
	// means, and the stateful metrics such as AUC from their "<key>[<i>]"
	// state keys: gokernel.Model.Result) are printed as
	// protocol.ModelInfo.Results, in the same order.
	Sums string
	// Step, when above 0, makes the reported learning rate the one at this
	// global step (a schedule's rate there).
	Step int64
}

// sumSet is one set of merged sums of inspectConfig.Sums.
type sumSet struct {
	Count int                `json:"count"`
	Sums  map[string]float64 `json:"sums"`
}

// runInspect prints the protocol.ModelInfo of c.Model as one JSON line on stdout and,
// with c.Out, writes the model there as a complete model directory.
func runInspect(c inspectConfig, stdout io.Writer) error {
	if c.Model == "" {
		return errors.New("inspect: no model given (--model SPEC_OR_DIR)")
	}
	m, err := gokernel.Open(c.Model, gokernel.WithSeed(c.Seed))
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if c.Compile.Loss != "" || c.Compile.Optimizer != "" || c.Compile.LearningRate != 0 || len(c.Compile.Metrics) > 0 {
		if m, err = recompile(m, c.Compile); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
	}
	hasWeights, err := gokernel.HasWeights(c.Model)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	info := protocol.ModelInfo{Info: m.Spec().Info(), HasWeights: hasWeights}
	if c.Step > 0 && m.Optimizer() != nil {
		m.Optimizer().SetStep(c.Step, 1)
		info.LearningRate = float64(m.Optimizer().LearningRate())
	}
	for _, w := range m.Weights() {
		info.Params += len(w.Data)
	}
	if c.Sums != "" {
		if info.Results, err = results(m, c.Sums); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
	}
	if c.Out != "" {
		if err := gokernel.SaveWeights(c.Out, m); err != nil {
			return fmt.Errorf("inspect: writing %s: %w", c.Out, err)
		}
	}
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return nil
}

// recompile returns m's weights in a model of its spec compiled with o.
func recompile(m *gokernel.Model, o gokernel.CompileOptions) (*gokernel.Model, error) {
	spec, err := m.Spec().Compile(o)
	if err != nil {
		return nil, err
	}
	out, err := gokernel.NewModel(spec)
	if err != nil {
		return nil, err
	}
	if err := out.SetWeights(m.Weights()); err != nil {
		return nil, err
	}
	return out, nil
}

// results reads the sets of sums in file and returns their results, null
// for NaN or an infinity.
func results(m *gokernel.Model, file string) ([]map[string]*float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sums: %w", err)
	}
	var sets []sumSet
	if err := json.Unmarshal(b, &sets); err != nil {
		return nil, fmt.Errorf("sums %s: %w", file, err)
	}
	out := make([]map[string]*float64, len(sets))
	for i, set := range sets {
		if set.Count < 0 {
			return nil, fmt.Errorf("sums %s: set %d has count %d", file, i, set.Count)
		}
		r := m.Result(gokernel.Sums{Count: set.Count, Sums: set.Sums})
		out[i] = make(map[string]*float64, len(r))
		for k, v := range r {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[i][k] = &v
			} else {
				out[i][k] = nil
			}
		}
	}
	return out, nil
}
