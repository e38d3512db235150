package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gophas/gophas/gokernel"
)

// InspectConfig is what `gophas inspect` looks at.
type InspectConfig struct {
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
}

// ModelInfo is the one JSON line `gophas inspect` prints.
type ModelInfo struct {
	Name       string `json:"name"`
	InputDim   int    `json:"inputDim"`
	InputShape []int  `json:"inputShape"`
	OutputDim  int    `json:"outputDim"`
	// Loss is the compiled loss; "" without a compile config.
	Loss    string   `json:"loss"`
	Metrics []string `json:"metrics"`
	// EvaluateKeys are the keys of the evaluate and train outputs, in
	// order: "loss", then each compiled metric; none without a loss.
	EvaluateKeys []string `json:"evaluateKeys"`
	// Params is the number of weight values.
	Params int `json:"params"`
	// HasWeights says whether Model is a directory with a weights file.
	HasWeights bool `json:"hasWeights"`
}

// Inspect prints the ModelInfo of c.Model as one JSON line on stdout and,
// with c.Out, writes the model there as a complete model directory.
func Inspect(c InspectConfig, stdout io.Writer) error {
	if c.Model == "" {
		return errors.New("bridge: inspect: no model given (--model SPEC_OR_DIR)")
	}
	m, hasWeights, err := inspectModel(c)
	if err != nil {
		return fmt.Errorf("bridge: inspect: %w", err)
	}
	spec := m.Spec()
	info := ModelInfo{Name: spec.Name(), InputDim: spec.InputDim(), InputShape: spec.InputShape(), OutputDim: spec.OutputDim(),
		Loss: spec.Loss(), Metrics: append([]string{}, spec.Metrics()...), EvaluateKeys: evaluateKeys(spec), HasWeights: hasWeights}
	if info.InputShape == nil {
		info.InputShape = []int{}
	}
	for _, w := range m.Weights() {
		info.Params += len(w.Data)
	}
	if c.Out != "" {
		if err := saveModelDir(c.Out, m); err != nil {
			return fmt.Errorf("bridge: inspect: writing %s: %w", c.Out, err)
		}
	}
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("bridge: inspect: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return fmt.Errorf("bridge: inspect: %w", err)
	}
	return nil
}

// inspectModel loads c.Model: a directory's own weights when it has a
// weights file, else the spec with weights initialized from c.Seed.
func inspectModel(c InspectConfig) (*gokernel.Model, bool, error) {
	st, err := os.Stat(c.Model)
	if err != nil {
		return nil, false, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		_, err := os.Stat(filepath.Join(c.Model, gokernel.WeightsFile))
		switch {
		case err == nil:
			m, err := gokernel.LoadModel(c.Model, gokernel.WithSeed(c.Seed))
			if err != nil {
				return nil, false, err
			}
			return m, true, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, false, fmt.Errorf("model: %w", err)
		}
	}
	spec, err := readSpec(c.Model)
	if err != nil {
		return nil, false, err
	}
	m, err := gokernel.NewModel(spec, gokernel.WithSeed(c.Seed))
	if err != nil {
		return nil, false, fmt.Errorf("model %q: %w", c.Model, err)
	}
	return m, false, nil
}

// evaluateKeys are the keys evaluate and train write, in order: "loss"
// then the compiled metrics; none without a loss.
func evaluateKeys(spec *gokernel.Spec) []string {
	if spec.Loss() == "" {
		return []string{}
	}
	keys := []string{"loss"}
	for _, k := range spec.Metrics() {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}
