package ps

import "fmt"

// TensorInfo names a tensor and gives its shape.
type TensorInfo struct {
	Name  string
	Shape []int
}

// Snapshot is one version of the weights, encoded for the wire. Its Payload
// is shared by every pull of that version and must not be modified.
type Snapshot struct {
	Version     uint64
	Tensors     []TensorInfo
	Encoding    Encoding
	Compression Compression
	RawSize     int    // bytes before compression
	Payload     []byte // bytes on the wire
}

type snapKey struct {
	enc  Encoding
	comp Compression
}

// Snapshot returns the current weights encoded with enc (Dense or BF16) and
// compressed with comp. It is built once per version and encoding and then
// shared, so many workers pulling one version cost one copy.
func (p *Params) Snapshot(enc Encoding, comp Compression) (*Snapshot, error) {
	if enc != Dense && enc != BF16 {
		return nil, fmt.Errorf("ps: weights cannot be sent as %v", enc)
	}
	if comp != NoCompression && comp != Zstd {
		return nil, fmt.Errorf("ps: unknown compression %d", comp)
	}
	key := snapKey{enc, comp}
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	if s := p.snaps[key]; s != nil && s.Version == p.version.Load() {
		return s, nil
	}
	p.mu.Lock() // Lock, not RLock: hogwild writers hold RLock
	if p.weights == nil {
		p.mu.Unlock()
		return nil, ErrNoWeights
	}
	s := &Snapshot{Version: p.version.Load(), Encoding: enc, Compression: comp}
	total := 0
	for _, t := range p.weights {
		s.Tensors = append(s.Tensors, TensorInfo{Name: t.Name, Shape: append([]int(nil), t.Shape...)})
		total += len(t.Data)
	}
	if enc == Dense {
		buf := make([]byte, 0, 4*total)
		for _, t := range p.weights {
			buf = appendDense(buf, t.Data)
		}
		s.Payload = buf
	} else {
		buf := make([]byte, 0, 2*total)
		for _, t := range p.weights {
			buf = appendBF16(buf, t.Data)
		}
		s.Payload = buf
	}
	p.mu.Unlock()
	s.RawSize = len(s.Payload)
	var err error
	if s.Payload, err = compress(comp, s.Payload); err != nil {
		return nil, err
	}
	p.snaps[key] = s
	return s, nil
}

// DecodeSnapshot turns a snapshot's payload back into tensors.
func DecodeSnapshot(s *Snapshot) ([]NamedTensor, error) {
	total := 0
	for _, ti := range s.Tensors {
		n := numel(ti.Shape)
		if n < 0 || total+n > MaxPayload/4 {
			return nil, fmt.Errorf("%w: tensor %q has bad shape %v", errCorrupt, ti.Name, ti.Shape)
		}
		total += n
	}
	if s.RawSize < 0 || payloadSize(s.Encoding, total) < 0 {
		return nil, fmt.Errorf("%w: snapshot of %d bytes as %v", errCorrupt, s.RawSize, s.Encoding)
	}
	raw, err := decompress(s.Compression, s.Payload, uint64(s.RawSize), uint64(payloadSize(s.Encoding, total)))
	if err != nil {
		return nil, err
	}
	if want := payloadSize(s.Encoding, total); want != len(raw) {
		return nil, fmt.Errorf("%w: %d values as %v need %d bytes, payload has %d", errCorrupt, total, s.Encoding, want, len(raw))
	}
	ts := make([]NamedTensor, len(s.Tensors))
	dst := make([][]float32, len(s.Tensors))
	for i, ti := range s.Tensors {
		ts[i] = NamedTensor{Name: ti.Name, Shape: append([]int(nil), ti.Shape...), Data: make([]float32, numel(ti.Shape))}
		dst[i] = ts[i].Data
	}
	if err := decodeValues(s.Encoding, raw, dst); err != nil {
		return nil, err
	}
	return ts, nil
}

// Shapes lists the model's tensors, or nil before SetWeights.
func (p *Params) Shapes() []TensorInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.weights == nil {
		return nil
	}
	return infos(p.weights)
}
