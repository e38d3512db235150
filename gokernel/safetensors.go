package gokernel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// The weights file is safetensors: an 8-byte little-endian header length,
// a JSON header mapping each name to {"dtype": "F32", "shape": [...],
// "data_offsets": [begin, end]} (offsets into the data that follows), padded
// with spaces to a multiple of 8 bytes, then the little-endian float32 data.
//
// The order of the tensors (Keras' get_weights() order) is kept two ways:
// the header's "__metadata__" holds {"gophas.order": "<JSON list of the
// names>"} and the data is laid out in that order. ReadSafetensors uses the
// metadata order when present, else the order of the data offsets, so files
// written by other safetensors writers read in their data order.

const (
	orderKey = "gophas.order"
	// maxHeader bounds the header a reader will allocate.
	maxHeader = 100 << 20
)

// ErrMalformed is wrapped by the errors ReadSafetensors returns for a file
// that is not valid safetensors.
var ErrMalformed = errors.New("malformed safetensors file")

type stEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes ts as a safetensors file, keeping their order.
// Names must be unique and not "__metadata__"; len(Data) must equal the
// product of Shape.
func WriteSafetensors(w io.Writer, ts []NamedTensor) error {
	header := map[string]any{}
	names := make([]string, len(ts))
	var off int64
	for i, t := range ts {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("gokernel: WriteSafetensors: tensor %d has the name %q", i, t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("gokernel: WriteSafetensors: tensor name %q appears twice", t.Name)
		}
		if prod(t.Shape) != len(t.Data) {
			return fmt.Errorf("gokernel: WriteSafetensors: tensor %q has shape %v but %d values", t.Name, t.Shape, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		n := int64(4 * len(t.Data))
		header[t.Name] = stEntry{Dtype: "F32", Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
		names[i] = t.Name
	}
	order, err := json.Marshal(names)
	if err != nil {
		return fmt.Errorf("gokernel: WriteSafetensors: %w", err)
	}
	header["__metadata__"] = map[string]string{orderKey: string(order)}
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("gokernel: WriteSafetensors: %w", err)
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	buf := make([]byte, 8, 8+len(hb)+int(off))
	binary.LittleEndian.PutUint64(buf, uint64(len(hb)))
	buf = append(buf, hb...)
	for _, t := range ts {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("gokernel: WriteSafetensors: %w", err)
	}
	return nil
}

// ReadSafetensors reads a safetensors file of F32 tensors, in the order
// described at WriteSafetensors. A file that is not valid safetensors gives
// an error wrapping ErrMalformed; another dtype than F32 is an error naming
// the tensor.
func ReadSafetensors(r io.Reader) ([]NamedTensor, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gokernel: ReadSafetensors: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, bad("reading the header length: %v", err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen < 2 || hlen > maxHeader {
		return nil, bad("header length %d", hlen)
	}
	// ReadAll grows with what arrives, so a false length allocates nothing.
	hb, err := io.ReadAll(io.LimitReader(r, int64(hlen)))
	if err != nil || uint64(len(hb)) != hlen {
		return nil, bad("reading the %d-byte header: got %d bytes (%v)", hlen, len(hb), err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, bad("header: %v", err)
	}
	var order []string
	if md, ok := raw["__metadata__"]; ok {
		delete(raw, "__metadata__")
		var meta map[string]string
		if err := json.Unmarshal(md, &meta); err != nil {
			return nil, bad("__metadata__: %v", err)
		}
		if o, ok := meta[orderKey]; ok {
			if err := json.Unmarshal([]byte(o), &order); err != nil {
				return nil, bad("__metadata__ %s: %v", orderKey, err)
			}
		}
	}
	entries := make(map[string]stEntry, len(raw))
	var names []string
	for name, r := range raw {
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt32/int64(d)) {
				return nil, bad("tensor %q: shape %v", name, e.Shape)
			}
			n *= int64(d)
		}
		if e.Dtype != "F32" {
			return nil, fmt.Errorf("gokernel: ReadSafetensors: tensor %q has dtype %s, want F32", name, e.Dtype)
		}
		if e.DataOffsets[0] < 0 || e.DataOffsets[1]-e.DataOffsets[0] != 4*n {
			return nil, bad("tensor %q: data_offsets %v do not hold shape %v of F32", name, e.DataOffsets, e.Shape)
		}
		entries[name] = e
		names = append(names, name)
	}
	// The data must be covered exactly, without gaps or overlaps.
	sort.Slice(names, func(i, j int) bool {
		a, b := entries[names[i]].DataOffsets, entries[names[j]].DataOffsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	var end int64
	for _, n := range names {
		e := entries[n]
		if e.DataOffsets[0] != end {
			return nil, bad("tensor %q starts at %d, want %d (gap or overlap)", n, e.DataOffsets[0], end)
		}
		end = e.DataOffsets[1]
	}
	data, err := io.ReadAll(io.LimitReader(r, end+1))
	if err != nil {
		return nil, bad("reading the data: %v", err)
	}
	if int64(len(data)) != end {
		return nil, bad("data is %d bytes, want %d", len(data), end)
	}
	if order != nil {
		if len(order) != len(names) {
			return nil, bad("%s lists %d names for %d tensors", orderKey, len(order), len(names))
		}
		seen := map[string]bool{}
		for _, n := range order {
			if _, ok := entries[n]; !ok || seen[n] {
				return nil, bad("%s: name %q is unknown or repeated", orderKey, n)
			}
			seen[n] = true
		}
		names = order
	}
	out := make([]NamedTensor, len(names))
	for i, n := range names {
		e := entries[n]
		b := data[e.DataOffsets[0]:e.DataOffsets[1]]
		v := make([]float32, len(b)/4)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		out[i] = NamedTensor{Name: n, Shape: append([]int{}, e.Shape...), Data: v}
	}
	return out, nil
}

// Files of a model directory.
const (
	SpecFile      = "model.json"
	WeightsFile   = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
)

// SaveModel writes m into dir (created if missing): model.json (the spec
// with its compile config, as Spec.MarshalJSON writes it), model.safetensors
// (the weights) and, if the optimizer has state, optimizer.safetensors.
func SaveModel(dir string, m *Model) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	spec, err := m.spec.MarshalJSON()
	if err != nil {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	if err := writeFile(filepath.Join(dir, SpecFile), func(w io.Writer) error { _, err := w.Write(spec); return err }); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, WeightsFile), func(w io.Writer) error { return WriteSafetensors(w, m.Weights()) }); err != nil {
		return err
	}
	optPath := filepath.Join(dir, OptimizerFile)
	if m.opt != nil {
		if st := m.opt.State(); len(st) > 0 {
			return writeFile(optPath, func(w io.Writer) error { return WriteSafetensors(w, st) })
		}
	}
	if err := os.Remove(optPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	return nil
}

// SaveWeights writes m into dir as SaveModel does but without optimizer
// state (an optimizer.safetensors there is removed): a model directory of
// the spec and the weights, such as a freshly initialized model or weights
// whose optimizer state lives elsewhere.
func SaveWeights(dir string, m *Model) error {
	if err := SaveModel(dir, m); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, OptimizerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gokernel: SaveWeights: %w", err)
	}
	return nil
}

// writeFile writes a file through a temporary file and a rename, so that a
// reader never sees half of it.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("gokernel: SaveModel: %s: %w", path, unwrapPrefix(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("gokernel: SaveModel: %w", err)
	}
	return nil
}

func readTensors(path string) ([]NamedTensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ts, err := ReadSafetensors(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), unwrapPrefix(err))
	}
	return ts, nil
}
