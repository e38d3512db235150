package ps

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/gophas/gophas/ps/pspb"
)

// DefaultChunkSize is the payload bytes per streamed message: large enough
// to stream at memory speed, well inside gRPC's default 4 MiB message limit.
const DefaultChunkSize = 1 << 20

// sendChunks streams payload behind hdr, chunkSize bytes per message. It sets
// hdr.PayloadSize. An empty payload still sends one chunk with the header.
func sendChunks(hdr *pspb.Header, payload []byte, chunkSize int, send func(*pspb.Chunk) error) error {
	return sendSegments(hdr, [][]byte{payload}, chunkSize, send)
}

// sendSegments streams the concatenation of segs as sendChunks does; a
// chunk holds bytes of one segment only, so no segment is copied.
func sendSegments(hdr *pspb.Header, segs [][]byte, chunkSize int, send func(*pspb.Chunk) error) error {
	hdr.PayloadSize = 0
	for _, s := range segs {
		hdr.PayloadSize += uint64(len(s))
	}
	first := true
	for i := 0; first || i < len(segs); {
		var data []byte
		if i < len(segs) {
			n := min(chunkSize, len(segs[i]))
			data, segs[i] = segs[i][:n], segs[i][n:]
			if len(segs[i]) == 0 {
				i++
			}
			if n == 0 && !first {
				continue
			}
		}
		c := &pspb.Chunk{Data: data}
		if first {
			c.Header = hdr
			first = false
		}
		if err := send(c); err != nil {
			return err
		}
	}
	return nil
}

// assembler reassembles a chunk stream: the header comes first, then data
// adding up to exactly the declared payload size, no more than max bytes.
// It is a chunkReceiver.
type assembler struct {
	max uint64
	hdr *pspb.Header
	buf []byte
}

// add takes the next chunk.
func (a *assembler) add(c *pspb.Chunk) error { return feedChunk(c, a) }

func (a *assembler) begin(h *pspb.Header) error {
	switch {
	case a.hdr == nil && h == nil:
		return fmt.Errorf("%w: first chunk has no header", errCorrupt)
	case a.hdr != nil && h != nil:
		return fmt.Errorf("%w: header repeated after %d bytes", errCorrupt, len(a.buf))
	case a.hdr == nil:
		if h.GetPayloadSize() > a.max {
			return fmt.Errorf("%w: payload of %d bytes exceeds %d", errCorrupt, h.GetPayloadSize(), a.max)
		}
		a.hdr = h
		// Trust the declared size only up to 64 MiB before data arrives.
		a.buf = make([]byte, 0, min(h.GetPayloadSize(), 1<<26))
	}
	return nil
}

func (a *assembler) write(p []byte) error {
	if uint64(len(a.buf))+uint64(len(p)) > a.hdr.GetPayloadSize() {
		return fmt.Errorf("%w: more than the declared %d payload bytes", errCorrupt, a.hdr.GetPayloadSize())
	}
	a.buf = append(a.buf, p...)
	return nil
}

// done returns the header and payload once the stream has ended.
func (a *assembler) done() (*pspb.Header, []byte, error) {
	if a.hdr == nil {
		return nil, nil, fmt.Errorf("%w: empty stream", errCorrupt)
	}
	if uint64(len(a.buf)) != a.hdr.GetPayloadSize() {
		return nil, nil, fmt.Errorf("%w: stream ended after %d of %d payload bytes", errCorrupt, len(a.buf), a.hdr.GetPayloadSize())
	}
	return a.hdr, a.buf, nil
}

// receive reads a chunk stream to its end (fast: through chunkCodec).
func receive(s chunkStream, fast bool, max uint64) (*pspb.Header, []byte, error) {
	a := assembler{max: max}
	if err := receiveInto(s, fast, &a); err != nil {
		return nil, nil, err
	}
	return a.done()
}

// decodeTensors decodes a header's tensor list and its payload into values,
// one slice per tensor. With ref non-nil the shapes must be ref's (a push);
// only then may the values be sparse. A compressed payload may not declare
// more raw bytes than its tensors need, and never decompresses to more.
func decodeTensors(h *pspb.Header, payload []byte, ref []TensorInfo) ([]NamedTensor, error) {
	total := 0
	ts := make([]NamedTensor, len(h.GetTensors()))
	for i, t := range h.GetTensors() {
		shape := make([]int, len(t.GetShape()))
		for j, d := range t.GetShape() {
			if d < 0 || d > MaxPayload {
				return nil, fmt.Errorf("%w: tensor %q has bad shape %v", errCorrupt, t.GetName(), t.GetShape())
			}
			shape[j] = int(d)
		}
		n := numel(shape)
		if n < 0 || total+n > MaxPayload/4 {
			return nil, fmt.Errorf("%w: tensor %q has bad shape %v", errCorrupt, t.GetName(), t.GetShape())
		}
		total += n
		ts[i] = NamedTensor{Name: t.GetName(), Shape: shape}
	}
	enc := Encoding(h.GetEncoding())
	if ref != nil {
		if err := sameShapes(ts, ref); err != nil {
			return nil, err
		}
	} else if enc == Sparse {
		return nil, fmt.Errorf("%w: sparse values need the model's shapes", errCorrupt)
	}
	limit := uint64(payloadSize(enc, total))
	if enc == Sparse {
		limit = 4 + 8*uint64(total)
	}
	raw, err := decompress(Compression(h.GetCompression()), payload, h.GetRawSize(), limit)
	if err != nil {
		return nil, err
	}
	if want := payloadSize(enc, total); want >= 0 && want != len(raw) {
		return nil, fmt.Errorf("%w: %d values as %v need %d bytes, payload has %d", errCorrupt, total, enc, want, len(raw))
	}
	if enc == Dense && littleEndian && len(raw) > 0 && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
		// The payload is this call's own buffer: view it as the values.
		all := unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), total)
		at := 0
		for i := range ts {
			n := numel(ts[i].Shape)
			ts[i].Data = all[at : at+n : at+n]
			at += n
		}
		return ts, nil
	}
	dst := make([][]float32, len(ts))
	for i := range ts {
		ts[i].Data = make([]float32, numel(ts[i].Shape))
		dst[i] = ts[i].Data
	}
	if err := decodeValues(enc, raw, dst); err != nil {
		return nil, err
	}
	return ts, nil
}

// tensorHeader lists ts in a header.
func tensorHeader(ts []TensorInfo) []*pspb.Tensor {
	out := make([]*pspb.Tensor, len(ts))
	for i, t := range ts {
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		out[i] = &pspb.Tensor{Name: t.Name, Shape: shape}
	}
	return out
}

func infos(ts []NamedTensor) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = TensorInfo{Name: t.Name, Shape: t.Shape}
	}
	return out
}

// sameShapes reports ErrShape unless ts has ref's tensor count and shapes.
func sameShapes(ts []NamedTensor, ref []TensorInfo) error {
	if len(ts) != len(ref) {
		return fmt.Errorf("%w: %d tensors, want %d", ErrShape, len(ts), len(ref))
	}
	for i, t := range ts {
		if !slices.Equal(t.Shape, ref[i].Shape) {
			return fmt.Errorf("%w: tensor %d %q has shape %v, want %v", ErrShape, i, ref[i].Name, t.Shape, ref[i].Shape)
		}
	}
	return nil
}

// weightsReceiver takes a pulled weights stream. Dense uncompressed chunks
// are copied straight into the tensors as they arrive (one copy, no
// reassembly buffer); other encodings go through an assembler.
type weightsReceiver struct {
	hdr *pspb.Header
	a   *assembler // not dense
	buf []float32
	dst []byte // buf's bytes
	off int
}

func (w *weightsReceiver) begin(h *pspb.Header) error {
	if w.a != nil {
		return w.a.begin(h)
	}
	if w.hdr != nil {
		if h != nil {
			return fmt.Errorf("%w: header repeated", errCorrupt)
		}
		return nil
	}
	if h == nil {
		return fmt.Errorf("%w: first chunk has no header", errCorrupt)
	}
	if h.GetNotModified() || h.GetEncoding() != pspb.Encoding_ENCODING_DENSE || h.GetCompression() != pspb.Compression_COMPRESSION_NONE || !littleEndian {
		w.a = &assembler{max: MaxPayload}
		return w.a.begin(h)
	}
	// Dense: lay the tensors out in one buffer and fill its bytes.
	total := 0
	for _, t := range h.GetTensors() {
		n := 1
		for _, d := range t.GetShape() {
			if d < 0 || d > MaxPayload || (d > 0 && n > MaxPayload/4/int(d)) {
				return fmt.Errorf("%w: tensor %q has bad shape %v", errCorrupt, t.GetName(), t.GetShape())
			}
			n *= int(d)
		}
		total += n
		if total > MaxPayload/4 {
			return fmt.Errorf("%w: %d values", errCorrupt, total)
		}
	}
	if uint64(4*total) != h.GetPayloadSize() || h.GetRawSize() != h.GetPayloadSize() {
		return fmt.Errorf("%w: %d values but %d payload bytes", errCorrupt, total, h.GetPayloadSize())
	}
	w.hdr = h
	w.buf = make([]float32, total)
	w.dst = f32Bytes(w.buf)
	return nil
}

func (w *weightsReceiver) write(p []byte) error {
	if w.a != nil {
		return w.a.write(p)
	}
	if len(p) > len(w.dst)-w.off {
		return fmt.Errorf("%w: more than the declared %d payload bytes", errCorrupt, len(w.dst))
	}
	w.off += copy(w.dst[w.off:], p)
	return nil
}

// done returns the header and the tensors once the stream has ended (no
// tensors when the header says not modified).
func (w *weightsReceiver) done() (*pspb.Header, []NamedTensor, error) {
	if w.a != nil {
		h, payload, err := w.a.done()
		if err != nil || h.GetNotModified() {
			return h, nil, err
		}
		ts, err := decodeTensors(h, payload, nil)
		return h, ts, err
	}
	if w.hdr == nil {
		return nil, nil, fmt.Errorf("%w: empty stream", errCorrupt)
	}
	if w.off != len(w.dst) {
		return nil, nil, fmt.Errorf("%w: stream ended after %d of %d payload bytes", errCorrupt, w.off, len(w.dst))
	}
	ts := make([]NamedTensor, len(w.hdr.GetTensors()))
	at := 0
	for i, t := range w.hdr.GetTensors() {
		shape := make([]int, len(t.GetShape()))
		for j, d := range t.GetShape() {
			shape[j] = int(d)
		}
		n := numel(shape)
		ts[i] = NamedTensor{Name: t.GetName(), Shape: shape, Data: w.buf[at : at+n : at+n]}
		at += n
	}
	return w.hdr, ts, nil
}

// receiveWeights reads a pulled weights stream to its end (fast: through
// chunkCodec).
func receiveWeights(s chunkStream, fast bool) (*pspb.Header, []NamedTensor, error) {
	var w weightsReceiver
	if err := receiveInto(s, fast, &w); err != nil {
		return nil, nil, err
	}
	return w.done()
}
