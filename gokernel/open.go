package gokernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Open loads the model at path; it is the one model loader of every entry
// (`gophas train`, `gophas inspect`, the Spark worker, the driver). path is
// either a spec file (Keras' model.to_json(), or {"model", "compile"}),
// whose weights are initialized (WithSeed), or a model directory as
// SaveModel writes it: model.json, model.safetensors when present (else
// initialized weights) and optimizer.safetensors when present.
func Open(path string, opts ...Option) (*Model, error) {
	m, err := open(path, false, opts)
	if err != nil {
		return nil, fmt.Errorf("gokernel: Open: %w", unwrapPrefix(err))
	}
	return m, nil
}

// LoadModel reads a model directory written by SaveModel: the spec, the
// weights (which must be there) and, if present, the optimizer state.
func LoadModel(dir string, opts ...Option) (*Model, error) {
	m, err := open(dir, true, opts)
	if err != nil {
		return nil, fmt.Errorf("gokernel: LoadModel: %w", unwrapPrefix(err))
	}
	return m, nil
}

// OpenSpec reads the spec of the model at path: a spec file, or a model
// directory's model.json.
func OpenSpec(path string) (*Spec, error) {
	file, _, err := specPath(path)
	if err != nil {
		return nil, fmt.Errorf("gokernel: OpenSpec: %w", err)
	}
	s, err := readSpec(file)
	if err != nil {
		return nil, fmt.Errorf("gokernel: OpenSpec: %w", unwrapPrefix(err))
	}
	return s, nil
}

// HasWeights reports whether path is a model directory with a weights
// file.
func HasWeights(path string) (bool, error) {
	_, dir, err := specPath(path)
	if err != nil || !dir {
		return false, err
	}
	switch _, err := os.Stat(filepath.Join(path, WeightsFile)); {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// specPath returns the spec file of path and whether path is a directory.
func specPath(path string) (file string, dir bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", false, err
	}
	if st.IsDir() {
		return filepath.Join(path, SpecFile), true, nil
	}
	return path, false, nil
}

func readSpec(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	s, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, unwrapPrefix(err))
	}
	return s, nil
}

func open(path string, needWeights bool, opts []Option) (*Model, error) {
	file, isDir, err := specPath(path)
	if err != nil {
		return nil, err
	}
	if needWeights && !isDir {
		return nil, fmt.Errorf("%s is not a model directory", path)
	}
	spec, err := readSpec(file)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(spec, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, unwrapPrefix(err))
	}
	if !isDir {
		return m, nil
	}
	has, err := HasWeights(path)
	if err != nil {
		return nil, err
	}
	if !has && !needWeights {
		return m, nil
	}
	w, err := readTensors(filepath.Join(path, WeightsFile))
	if err != nil {
		return nil, err
	}
	if err := m.SetWeights(w); err != nil {
		return nil, fmt.Errorf("%s: %w", WeightsFile, unwrapPrefix(err))
	}
	st, err := readTensors(filepath.Join(path, OptimizerFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	case m.opt == nil:
		return nil, fmt.Errorf("%s exists but the spec has no optimizer", OptimizerFile)
	default:
		if err := m.opt.SetState(st); err != nil {
			return nil, fmt.Errorf("%s: %w", OptimizerFile, unwrapPrefix(err))
		}
	}
	return m, nil
}
