package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gophas/gophas/gokernel"
)

// headerFields are the exact JSON names of Header's fields.
var headerFields = func() []string {
	t := reflect.TypeFor[Header]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

// ReadHeader reads the length-prefixed JSON header of a task from r and
// parses it with ParseHeader. It reads exactly HeaderLengthBytes+N bytes.
func ReadHeader(r io.Reader) (Header, error) {
	var lb [HeaderLengthBytes]byte
	if n, err := io.ReadFull(r, lb[:]); err != nil {
		if err == io.EOF {
			return Header{}, errors.New("protocol: no task on stdin: end of input before the header")
		}
		return Header{}, fmt.Errorf("protocol: reading the header length (%d of %d bytes): %w", n, HeaderLengthBytes, err)
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 || n > MaxHeaderBytes {
		return Header{}, fmt.Errorf("protocol: header length %d (bytes %x) out of range 1..%d", n, lb, MaxHeaderBytes)
	}
	buf := make([]byte, n)
	if got, err := io.ReadFull(r, buf); err != nil {
		return Header{}, fmt.Errorf("protocol: reading the header (%d of %d bytes): %w", got, n, err)
	}
	return ParseHeader(buf)
}

// ParseHeader parses and checks a JSON header, filling in defaults.
func ParseHeader(b []byte) (Header, error) {
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return Header{}, fmt.Errorf("protocol: header: invalid UTF-8 at byte %d", i)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return Header{}, fmt.Errorf("protocol: header: want a JSON object: %w", err)
	}
	if k, ok := duplicateKey(b); ok {
		return Header{}, fmt.Errorf("protocol: header: field %q appears twice", k)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(headerFields, k) {
			return Header{}, fmt.Errorf("protocol: header: unknown field %q (fields: %s)", k, strings.Join(headerFields, ", "))
		}
	}
	h := Header{Protocol: ProtocolVersion, Partition: DefaultPartition}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, fmt.Errorf("protocol: header: %w", err)
	}
	if err := h.check(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// duplicateKey returns a key that appears twice in the JSON object b (which
// parses): encoding/json would silently keep the last value.
func duplicateKey(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		k, _ := tok.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// check validates the fields and fills in defaults.
func (h *Header) check() error {
	switch {
	case h.Mode == "":
		return fmt.Errorf("protocol: header: field \"mode\" is required (modes: %s)", strings.Join(Modes, ", "))
	case !slices.Contains(Modes, h.Mode):
		return fmt.Errorf("protocol: header: unknown mode %q (modes: %s)", h.Mode, strings.Join(Modes, ", "))
	case h.Protocol != ProtocolVersion:
		return fmt.Errorf("protocol: header: protocol %d, this worker speaks protocol %d", h.Protocol, ProtocolVersion)
	case h.BatchRows < 0 || h.BatchRows > MaxBatchRows:
		return fmt.Errorf("protocol: header: batchRows %d, want 0..%d", h.BatchRows, MaxBatchRows)
	case h.IOTimeoutMs < 0:
		return fmt.Errorf("protocol: header: ioTimeoutMs %d, want >= 0", h.IOTimeoutMs)
	case h.IOTimeoutMs > int64(24*time.Hour/time.Millisecond):
		return fmt.Errorf("protocol: header: ioTimeoutMs %d, want at most a day", h.IOTimeoutMs)
	case h.Threads < 0 || h.Threads > MaxThreads:
		return fmt.Errorf("protocol: header: threads %d, want 0..%d", h.Threads, MaxThreads)
	case h.Model == "" && (h.Mode == ModePredict || h.Mode == ModeEvaluate || h.Mode == ModeTrain):
		return fmt.Errorf("protocol: header: field \"model\" is required for mode %s (a model directory)", h.Mode)
	case h.Driver == "" && h.Mode == ModeTrain:
		return errors.New("protocol: header: field \"driver\" is required for mode train (host:port of the parameter server)")
	case h.Driver != "" && h.Token == "":
		return fmt.Errorf("protocol: header: field \"token\" is required with driver %q (the job's token)", h.Driver)
	case h.Worker == "" && h.Mode == ModeTrain:
		return errors.New("protocol: header: field \"worker\" is required for mode train (a stable worker name)")
	case h.Partition < 0 && h.Mode == ModeTrain:
		return fmt.Errorf("protocol: header: partition %d, want >= 0 for mode train (the worker index of the epoch's random streams)", h.Partition)
	case h.Epoch < 1 && h.Mode == ModeTrain:
		return fmt.Errorf("protocol: header: epoch %d, want >= 1 for mode train (epochs count from 1)", h.Epoch)
	case h.Epoch < 0 || h.Epochs < 0 || h.Epoch > MaxEpochs || h.Epochs > MaxEpochs:
		return fmt.Errorf("protocol: header: epoch %d of %d, want 0..%d", h.Epoch, h.Epochs, MaxEpochs)
	case h.BatchSize < 0 || h.BatchSize > MaxBatchSize:
		return fmt.Errorf("protocol: header: batchSize %d, want 0..%d", h.BatchSize, MaxBatchSize)
	case h.ShuffleBufferBytes < 0:
		return fmt.Errorf("protocol: header: shuffleBufferBytes %d, want >= 0", h.ShuffleBufferBytes)
	case h.LearningRate != nil && (!(*h.LearningRate >= 0) || math.IsInf(*h.LearningRate, 1)):
		return fmt.Errorf("protocol: header: learningRate %v, want a finite number >= 0", *h.LearningRate)
	case h.SampleWeightCol != "" && len(h.ClassWeight) > 0:
		return fmt.Errorf("protocol: header: sampleWeightCol %q and classWeight cannot be used together (Keras refuses both too)", h.SampleWeightCol)
	case h.SampleWeightCol != "" && (h.SampleWeightCol == h.LabelCol || slices.Contains(h.Features(), h.SampleWeightCol)):
		return fmt.Errorf("protocol: header: sampleWeightCol %q is also a features or label column", h.SampleWeightCol)
	}
	if len(h.ClassWeight) > 0 {
		if _, err := h.ClassWeights(); err != nil {
			return err
		}
	}
	for i, c := range h.FeaturesCols {
		if c == "" {
			return fmt.Errorf("protocol: header: featuresCols[%d] is empty", i)
		}
	}
	for i, c := range h.PredictionCols {
		if c == "" {
			return fmt.Errorf("protocol: header: predictionCols[%d] is empty", i)
		}
	}
	for _, cols := range []struct {
		name string
		cols []string
	}{{"featuresCols", h.FeaturesCols}, {"labelCols", h.LabelCols}, {"predictionCols", h.PredictionCols}} {
		for i, c := range cols.cols {
			if c != "" && slices.Index(cols.cols, c) < i {
				return fmt.Errorf("protocol: header: %s names column %q twice", cols.name, c)
			}
		}
	}
	if len(h.LabelCols) > 0 && !slices.ContainsFunc(h.LabelCols, func(c string) bool { return c != "" }) {
		return errors.New("protocol: header: labelCols names no column")
	}
	if h.FeaturesCol == "" {
		h.FeaturesCol = DefaultFeaturesCol
	}
	if h.LabelCol == "" {
		h.LabelCol = DefaultLabelCol
	}
	if h.PredictionCol == "" {
		h.PredictionCol = DefaultPredictionCol
	}
	if h.BatchRows == 0 {
		h.BatchRows = DefaultBatchRows
	}
	if h.BatchSize == 0 {
		h.BatchSize = DefaultBatchSize
	}
	if h.ShuffleBufferBytes == 0 {
		h.ShuffleBufferBytes = DefaultShuffleBufferBytes
	}
	if h.IOTimeoutMs == 0 {
		h.IOTimeoutMs = DefaultIOTimeout.Milliseconds()
	}
	return nil
}

// Features returns the feature columns, one per model input:
// FeaturesCols, or FeaturesCol alone.
func (h *Header) Features() []string {
	if len(h.FeaturesCols) > 0 {
		return h.FeaturesCols
	}
	return []string{h.FeaturesCol}
}

// Labels returns the label columns, one per model output: LabelCols, or
// LabelCol alone.
func (h *Header) Labels() []string {
	if len(h.LabelCols) > 0 {
		return h.LabelCols
	}
	return []string{h.LabelCol}
}

// Predictions returns the prediction columns, one per model output:
// PredictionCols, or PredictionCol alone.
func (h *Header) Predictions() []string {
	if len(h.PredictionCols) > 0 {
		return h.PredictionCols
	}
	return []string{h.PredictionCol}
}

// IOTimeout returns the per-wait deadline of the pipe.
func (h *Header) IOTimeout() time.Duration {
	if h.IOTimeoutMs <= 0 {
		return DefaultIOTimeout
	}
	return time.Duration(h.IOTimeoutMs) * time.Millisecond
}

// AppendHeader appends the length-prefixed JSON encoding of h to b: the
// bytes a shim writes before the Arrow stream.
func AppendHeader(b []byte, h any) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return b, fmt.Errorf("protocol: encoding the header: %w", err)
	}
	if len(js) > MaxHeaderBytes {
		return b, fmt.Errorf("protocol: header of %d bytes exceeds MaxHeaderBytes %d", len(js), MaxHeaderBytes)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	return append(b, js...), nil
}

// ClassWeights returns the header's classWeight as the kernel's
// ClassWeight (nil without one).
func (h *Header) ClassWeights() (gokernel.ClassWeight, error) {
	if len(h.ClassWeight) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(h.ClassWeight)
	if err != nil {
		return nil, fmt.Errorf("protocol: header: classWeight: %w", err)
	}
	cw, err := gokernel.ParseClassWeight(raw)
	if err != nil {
		return nil, fmt.Errorf("protocol: header: %s", strings.TrimPrefix(err.Error(), "gokernel: "))
	}
	return cw, nil
}
