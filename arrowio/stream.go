package arrowio

import (
	"encoding/binary"
	"fmt"
	"io"

	flatbuffers "github.com/google/flatbuffers/go"
)

// checkedStream passes an Arrow IPC stream through unchanged (bodies go
// straight into the caller's buffer) and checks each message's flatbuffer
// metadata before arrow-go decodes it. arrow-go trusts the lengths of the
// vectors in the metadata (schema fields, children, key-value metadata) and
// makes slices of whatever length they claim; a few corrupt bytes would make
// the worker allocate without bound. Here every vector must lie inside its
// message, nesting is bounded, and the metadata and body sizes are capped.
type checkedStream struct {
	r                io.Reader
	maxMeta, maxBody int64
	msg              int    // index of the current message, for errors
	pending          []byte // framing and metadata not yet handed out
	body             int64  // body bytes still to pass through
	done             bool   // end-of-stream marker passed
	needEnd          bool   // the end of r before the marker is an error
	buf              []byte
}

// StreamOption configures CheckedStream.
type StreamOption func(*checkedStream)

// WithEndMarker makes the end of the input before its end-of-stream marker
// an error wrapping io.ErrUnexpectedEOF. The IPC format lets a writer end a
// stream by closing it, so without this option a stream cut exactly between
// two messages reads as complete; with it, a producer that always writes
// the marker (Gophas' shim does) and a cut stream are told apart. Default:
// off.
func WithEndMarker() StreamOption { return func(s *checkedStream) { s.needEnd = true } }

// CheckedStream returns a reader that passes the Arrow IPC stream r through
// unchanged, failing with an error naming the message when a message's
// flatbuffer metadata has a vector outside the message, fields nested deeper
// than 64 or more than 65536 of them, metadata longer than maxMetadata or a
// body longer than maxBody bytes. Give it, not r, to ipc.NewReader when r is
// untrusted.
func CheckedStream(r io.Reader, maxMetadata, maxBody int64, opts ...StreamOption) io.Reader {
	s := &checkedStream{r: r, maxMeta: maxMetadata, maxBody: maxBody, msg: -1}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *checkedStream) Read(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return 0, nil
	case len(s.pending) > 0:
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	case s.body > 0:
		n, err := s.r.Read(p[:min(int64(len(p)), s.body)])
		s.body -= int64(n)
		if err == io.EOF && s.body > 0 {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case s.done:
		return 0, io.EOF
	}
	if err := s.next(); err != nil {
		return 0, err
	}
	return s.Read(p)
}

// next reads and checks the framing and metadata of the next message.
func (s *checkedStream) next() error {
	s.msg++
	var hdr [8]byte
	if n, err := io.ReadFull(s.r, hdr[:4]); err != nil {
		if n > 0 {
			s.pending = append(s.buf[:0], hdr[:n]...) // arrow-go reports the short read
			s.done = true
			return nil
		}
		if err == io.EOF && s.needEnd {
			return fmt.Errorf("arrowio: the input stream ended after %d message(s) without its end-of-stream marker: %w", s.msg, io.ErrUnexpectedEOF)
		}
		return err
	}
	frame := hdr[:4]
	if binary.LittleEndian.Uint32(hdr[:4]) == 0xFFFFFFFF {
		if n, err := io.ReadFull(s.r, hdr[4:]); err != nil {
			s.pending = append(s.buf[:0], hdr[:4+n]...)
			s.done = true
			return nil
		}
		frame = hdr[:8]
	}
	length := int64(int32(binary.LittleEndian.Uint32(frame[len(frame)-4:])))
	s.buf = append(s.buf[:0], frame...)
	if length == 0 {
		s.pending, s.done = s.buf, true
		return nil
	}
	if length < 0 || length > s.maxMeta {
		return fmt.Errorf("arrowio: input message %d: metadata length %d out of range 1..%d", s.msg, length, s.maxMeta)
	}
	start := len(s.buf)
	s.buf = append(s.buf, make([]byte, length)...)
	if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
		return fmt.Errorf("arrowio: input message %d: reading %d bytes of metadata: %w", s.msg, length, err)
	}
	body, err := checkMessage(s.buf[start:])
	if err != nil {
		return fmt.Errorf("arrowio: input message %d: %w", s.msg, err)
	}
	if body < 0 || body > s.maxBody {
		return fmt.Errorf("arrowio: input message %d: body length %d out of range 0..%d", s.msg, body, s.maxBody)
	}
	s.pending, s.body = s.buf, body
	return nil
}

// Limits of the metadata walk.
const (
	maxFieldDepth = 64
	maxFields     = 1 << 16
)

// checkMessage walks an IPC Message flatbuffer (Message.fbs, Schema.fbs)
// and returns its body length. Reads outside b are errors.
func checkMessage(b []byte) (bodyLen int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed metadata (%v)", r)
		}
	}()
	if len(b) < 8 {
		return 0, fmt.Errorf("metadata of %d bytes is too short", len(b))
	}
	c := &fbCheck{b: b}
	msg := c.root()
	c.vector(msg, 4, 4, "custom_metadata", c.keyValue)
	bodyLen = msg.GetInt64Slot(slot(3), 0)
	var h flatbuffers.Table
	if o := flatbuffers.UOffsetT(msg.Offset(slot(2))); o != 0 {
		c.inside(o + msg.Pos)
		msg.Union(&h, o)
		c.table(h)
	}
	switch msg.GetByteSlot(slot(1), 0) {
	case 1: // Schema
		c.schema(h)
	case 2: // DictionaryBatch
		if rb, ok := c.child(h, 1); ok {
			c.recordBatch(rb)
		}
	case 3: // RecordBatch
		c.recordBatch(h)
	}
	return bodyLen, c.err
}

func slot(i int) flatbuffers.VOffsetT { return flatbuffers.VOffsetT(4 + 2*i) }

type fbCheck struct {
	b      []byte
	fields int
	depth  int
	err    error
}

func (c *fbCheck) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *fbCheck) inside(pos flatbuffers.UOffsetT) {
	if int64(pos)+4 > int64(len(c.b)) {
		panic(fmt.Sprintf("offset %d outside %d bytes", pos, len(c.b)))
	}
}

func (c *fbCheck) root() flatbuffers.Table {
	t := flatbuffers.Table{Bytes: c.b, Pos: flatbuffers.GetUOffsetT(c.b)}
	c.table(t)
	return t
}

// table checks that t and its vtable lie inside the buffer.
func (c *fbCheck) table(t flatbuffers.Table) {
	c.inside(t.Pos)
	vt := int64(t.Pos) - int64(t.GetSOffsetT(t.Pos))
	if vt < 0 || vt+4 > int64(len(c.b)) {
		panic(fmt.Sprintf("vtable at %d outside %d bytes", vt, len(c.b)))
	}
	if vlen := int64(t.GetVOffsetT(flatbuffers.UOffsetT(vt))); vt+vlen > int64(len(c.b)) {
		panic(fmt.Sprintf("vtable of %d bytes at %d outside %d bytes", vlen, vt, len(c.b)))
	}
}

// child returns the table a table-valued field points to.
func (c *fbCheck) child(t flatbuffers.Table, i int) (flatbuffers.Table, bool) {
	o := flatbuffers.UOffsetT(t.Offset(slot(i)))
	if o == 0 {
		return flatbuffers.Table{}, false
	}
	c.inside(t.Pos + o)
	ct := flatbuffers.Table{Bytes: c.b, Pos: t.Indirect(t.Pos + o)}
	c.table(ct)
	return ct, true
}

// vector checks that the vector in field i of t, of elements of size elem,
// lies inside the buffer; for vectors of tables each calls each.
func (c *fbCheck) vector(t flatbuffers.Table, i int, elem int64, name string, each func(flatbuffers.Table)) {
	o := flatbuffers.UOffsetT(t.Offset(slot(i)))
	if o == 0 {
		return
	}
	c.inside(t.Pos + o)
	n := int64(t.VectorLen(o))
	start := int64(t.Vector(o))
	if start+n*elem > int64(len(c.b)) {
		c.fail("%s: %d elements overrun the metadata of %d bytes", name, n, len(c.b))
		return
	}
	for k := int64(0); each != nil && k < n && c.err == nil; k++ {
		pos := flatbuffers.UOffsetT(start + k*4)
		et := flatbuffers.Table{Bytes: c.b, Pos: t.Indirect(pos)}
		c.table(et)
		each(et)
	}
}

func (c *fbCheck) keyValue(kv flatbuffers.Table) {
	c.vector(kv, 0, 1, "key", nil)
	c.vector(kv, 1, 1, "value", nil)
}

func (c *fbCheck) schema(s flatbuffers.Table) {
	c.vector(s, 1, 4, "fields", c.field)
	c.vector(s, 2, 4, "custom_metadata", c.keyValue)
	c.vector(s, 3, 8, "features", nil)
}

func (c *fbCheck) field(f flatbuffers.Table) {
	c.fields++
	if c.fields > maxFields {
		c.fail("more than %d fields", maxFields)
		return
	}
	if c.depth >= maxFieldDepth {
		c.fail("fields nested deeper than %d", maxFieldDepth)
		return
	}
	c.depth++
	defer func() { c.depth-- }()
	c.vector(f, 0, 1, "name", nil)
	if typ, ok := c.child(f, 3); ok && f.GetByteSlot(slot(2), 0) == 14 { // Union
		c.vector(typ, 1, 4, "typeIds", nil)
	}
	if d, ok := c.child(f, 4); ok { // DictionaryEncoding
		c.child(d, 1)
	}
	c.vector(f, 5, 4, "children", c.field)
	c.vector(f, 6, 4, "custom_metadata", c.keyValue)
}

func (c *fbCheck) recordBatch(rb flatbuffers.Table) {
	c.vector(rb, 1, 16, "nodes", nil)
	c.vector(rb, 2, 16, "buffers", nil)
	c.child(rb, 3)
	c.vector(rb, 4, 8, "variadicBufferCounts", nil)
}
