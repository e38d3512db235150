package arrowio

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"gorgonia.org/tensor"
)

// ErrNoRows is returned by Matrix for a record with no rows: a tensor of
// shape 0×width cannot be built. Callers that may see empty batches skip them
// or use AppendMatrix.
var ErrNoRows = errors.New("arrowio: record has no rows")

// Option configures a conversion.
type Option func(*config)

type config struct {
	allowNaN  bool
	rowOffset int64
}

// WithAllowNaN lets NaN and ±Inf values through (and float64 values that
// overflow float32 to ±Inf). The default, false, makes any of them an error
// naming the column, row, element and value.
func WithAllowNaN(allow bool) Option {
	return func(c *config) { c.allowNaN = allow }
}

// WithRowOffset sets the number reported for the first row of the first
// record, so that errors in a stream's later batches name absolute rows. The
// default is 0. A Converter advances it by each record's length.
func WithRowOffset(n int64) Option {
	return func(c *config) { c.rowOffset = n }
}

// Matrix converts the columns cols of rec into a dense float32 tensor of
// shape rows×width, row-major, the columns concatenated in order. See
// Converter for the accepted column types and the errors. A record with no
// rows gives ErrNoRows.
func Matrix(rec arrow.RecordBatch, cols []string, opts ...Option) (*tensor.Dense, error) {
	if rec.NumRows() == 0 {
		return nil, ErrNoRows
	}
	c := NewConverter(cols, opts...)
	buf, err := c.Append(nil, rec)
	if err != nil {
		return nil, err
	}
	return tensor.New(tensor.WithShape(int(rec.NumRows()), c.Width()), tensor.WithBacking(buf)), nil
}

// AppendMatrix is the allocation-free form of Matrix for hot loops: it appends
// the rows×width values of rec to dst (reusing its capacity) and returns the
// extended slice and the width.
func AppendMatrix(dst []float32, rec arrow.RecordBatch, cols []string, opts ...Option) ([]float32, int, error) {
	c := NewConverter(cols, opts...)
	dst, err := c.Append(dst, rec)
	return dst, c.Width(), err
}

// A Converter turns the record batches of one stream into rows of a dense
// float32 matrix. It remembers each column's width, so a later batch whose
// rows differ in width from the first batch's is an error, and it counts rows,
// so errors name the row's position in the whole stream.
//
// Accepted column types:
//   - a vector column: list, large_list or fixed_size_list whose elements are
//     any Arrow integer or floating-point type (Spark ML vectors arrive from
//     the shim as list<float64>); its width is the length of its first row
//     (the list size for fixed_size_list), and every row must have it;
//   - a scalar column of any integer or floating-point type: width 1.
//
// Values are converted with Go's float32(v). A null row or element, a row of
// another width, an empty vector, a missing column, another type, and (unless
// WithAllowNaN) a NaN or ±Inf are errors naming the column and the row.
type Converter struct {
	cols   []string
	cfg    config
	widths []int // per column; -1 while unknown
	idx    []int // per column: field index in the schema it was checked against
	schema *arrow.Schema
	row    int64
	plans  []plan
}

type plan struct {
	name  string
	list  array.ListLike // nil for a scalar column
	vals  arrow.Array    // the numbers: list values or the scalar column
	width int
	off   int // offset of the column within a matrix row
}

// NewConverter returns a Converter for the columns cols, in order.
func NewConverter(cols []string, opts ...Option) *Converter {
	c := &Converter{cols: append([]string(nil), cols...)}
	for _, o := range opts {
		o(&c.cfg)
	}
	c.row = c.cfg.rowOffset
	c.widths = make([]int, len(cols))
	for i := range c.widths {
		c.widths[i] = -1
	}
	c.plans = make([]plan, len(cols))
	return c
}

// Check validates the converter's columns against schema: each must exist and
// have an accepted type. Widths that the type fixes (1 for a scalar, the size
// of a fixed_size_list) become known. Append calls it for a new schema.
func (c *Converter) Check(schema *arrow.Schema) error {
	if len(c.cols) == 0 {
		return errors.New("arrowio: no columns to convert")
	}
	idx := make([]int, len(c.cols))
	for i, name := range c.cols {
		ix := schema.FieldIndices(name)
		if len(ix) == 0 {
			return fmt.Errorf("arrowio: no column %q in the schema (columns: %s)", name, fieldNames(schema))
		}
		if len(ix) > 1 {
			return fmt.Errorf("arrowio: column %q appears %d times in the schema", name, len(ix))
		}
		idx[i] = ix[0]
		w, err := typeWidth(name, schema.Field(ix[0]).Type)
		if err != nil {
			return err
		}
		if w >= 0 {
			if c.widths[i] >= 0 && c.widths[i] != w {
				return fmt.Errorf("arrowio: column %q: width %d in the new schema, want %d", name, w, c.widths[i])
			}
			c.widths[i] = w
		}
	}
	c.idx, c.schema = idx, schema
	return nil
}

// typeWidth returns the width a type fixes (-1 for a variable-length list),
// or an error for a type that is not accepted.
func typeWidth(name string, t arrow.DataType) (int, error) {
	switch t := t.(type) {
	case *arrow.ListType:
		return -1, checkElem(name, t, t.Elem())
	case *arrow.LargeListType:
		return -1, checkElem(name, t, t.Elem())
	case *arrow.FixedSizeListType:
		if t.Len() <= 0 {
			return 0, fmt.Errorf("arrowio: column %q: type %s has no elements", name, t)
		}
		return int(t.Len()), checkElem(name, t, t.Elem())
	default:
		if isNumber(t) {
			return 1, nil
		}
		return 0, fmt.Errorf("arrowio: column %q: type %s is not supported (want a number or a list of numbers)", name, t)
	}
}

func checkElem(name string, list, elem arrow.DataType) error {
	if isNumber(elem) {
		return nil
	}
	return fmt.Errorf("arrowio: column %q: type %s is not supported (want a list of numbers)", name, list)
}

func isNumber(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}

func fieldNames(s *arrow.Schema) string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = fmt.Sprintf("%q", f.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Width returns the width of a matrix row, the sum of the column widths, or
// -1 while some column's width is unknown (no row seen yet).
func (c *Converter) Width() int {
	w := 0
	for _, cw := range c.widths {
		if cw < 0 {
			return -1
		}
		w += cw
	}
	return w
}

// Widths returns each column's width (-1 while unknown), in column order.
func (c *Converter) Widths() []int { return append([]int(nil), c.widths...) }

// Rows returns the number of rows converted so far plus the row offset: the
// absolute number of the next row.
func (c *Converter) Rows() int64 { return c.row }

// Append appends the rows of rec to dst as a row-major matrix of Width()
// columns and returns the extended slice. On error dst is returned with its
// original length.
func (c *Converter) Append(dst []float32, rec arrow.RecordBatch) ([]float32, error) {
	if c.schema == nil || !c.schema.Equal(rec.Schema()) {
		if err := c.Check(rec.Schema()); err != nil {
			return dst, err
		}
	}
	n := int(rec.NumRows())
	if n == 0 {
		return dst, nil
	}
	// Plan: resolve arrays and widths, validating structure before writing.
	off := 0
	for i, name := range c.cols {
		arr := rec.Column(c.idx[i])
		if arr.Len() != n {
			return dst, fmt.Errorf("arrowio: column %q has %d rows, the record %d", name, arr.Len(), n)
		}
		p := plan{name: name, vals: arr, width: 1, off: off}
		if l, ok := arr.(array.ListLike); ok {
			p.list, p.vals = l, l.ListValues()
			if err := validList(l); err != nil {
				return dst, fmt.Errorf("arrowio: column %q: %w", name, err)
			}
			if c.widths[i] < 0 {
				if l.IsNull(0) {
					return dst, c.errAt(name, 0, "null")
				}
				s, e := l.ValueOffsets(0)
				c.widths[i] = int(e - s)
			}
			p.width = c.widths[i]
			if p.width <= 0 {
				return dst, c.errAt(name, 0, fmt.Sprintf("empty vector (width %d)", p.width))
			}
		}
		c.plans[i] = p
		off += p.width
	}
	width := off
	base := len(dst)
	if need := base + n*width; need > cap(dst) {
		grown := make([]float32, need, need+need/4)
		copy(grown, dst)
		dst = grown
	} else {
		dst = dst[:need]
	}
	for i := range c.plans {
		p := &c.plans[i]
		var err error
		if p.list != nil {
			err = c.fillList(dst[base:], width, p)
		} else {
			err = c.fillScalar(dst[base:], width, p)
		}
		if err != nil {
			return dst[:base], err
		}
	}
	c.row += int64(n)
	return dst, nil
}

// validList checks the structure of a list array decoded from untrusted
// bytes, so that the loops below cannot index out of range.
func validList(l array.ListLike) error {
	type validator interface{ Validate() error }
	if v, ok := l.(validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if f, ok := l.(*array.FixedSizeList); ok {
		need := (int64(f.Data().Offset()) + int64(f.Len())) * int64(f.DataType().(*arrow.FixedSizeListType).Len())
		if int64(f.ListValues().Len()) < need {
			return fmt.Errorf("fixed_size_list values have %d elements, want %d", f.ListValues().Len(), need)
		}
	}
	return nil
}

func (c *Converter) errAt(name string, row int, what string) error {
	return fmt.Errorf("arrowio: column %q row %d: %s", name, c.row+int64(row), what)
}

func (c *Converter) errElem(name string, row, elem int, v float64) error {
	if !c.cfg.allowNaN && (math.IsNaN(v) || math.IsInf(v, 0)) {
		return fmt.Errorf("arrowio: column %q row %d element %d: value %v not allowed (WithAllowNaN is false)", name, c.row+int64(row), elem, v)
	}
	return fmt.Errorf("arrowio: column %q row %d element %d: value %v overflows float32", name, c.row+int64(row), elem, v)
}

// fillList writes a vector column into dst (rows of width total values).
func (c *Converter) fillList(dst []float32, total int, p *plan) error {
	l, w := p.list, p.width
	nvals := int64(p.vals.Len())
	rowNulls, elemNulls := l.NullN() > 0, p.vals.NullN() > 0
	for r := 0; r < l.Len(); r++ {
		if rowNulls && l.IsNull(r) {
			return c.errAt(p.name, r, "null")
		}
		s, e := l.ValueOffsets(r)
		if s < 0 || e < s || e > nvals {
			return c.errAt(p.name, r, fmt.Sprintf("offsets [%d, %d) outside the %d values", s, e, nvals))
		}
		if int(e-s) != w {
			return c.errAt(p.name, r, fmt.Sprintf("width %d, want %d (the first row's)", e-s, w))
		}
		if elemNulls {
			for j := s; j < e; j++ {
				if p.vals.IsNull(int(j)) {
					return c.errAt(p.name, r, fmt.Sprintf("element %d is null", j-s))
				}
			}
		}
		out := dst[r*total+p.off : r*total+p.off+w]
		if bad := convert(out, p.vals, int(s), int(e), c.cfg.allowNaN); bad >= 0 {
			return c.errElem(p.name, r, bad, value(p.vals, int(s)+bad))
		}
	}
	return nil
}

// fillScalar writes a scalar column into dst, one value per row.
func (c *Converter) fillScalar(dst []float32, total int, p *plan) error {
	n := p.vals.Len()
	if p.vals.NullN() > 0 {
		for r := 0; r < n; r++ {
			if p.vals.IsNull(r) {
				return c.errAt(p.name, r, "null")
			}
		}
	}
	if total == 1 {
		if bad := convert(dst[:n], p.vals, 0, n, c.cfg.allowNaN); bad >= 0 {
			return c.errElem(p.name, bad, 0, value(p.vals, bad))
		}
		return nil
	}
	var one [1]float32
	for r := 0; r < n; r++ {
		if bad := convert(one[:], p.vals, r, r+1, c.cfg.allowNaN); bad >= 0 {
			return c.errElem(p.name, r, 0, value(p.vals, r))
		}
		dst[r*total+p.off] = one[0]
	}
	return nil
}

// convert writes vals[s:e] to out as float32 and returns the index (relative
// to s) of the first non-finite result, or -1. Non-finite values are only
// reported when allowNaN is false.
func convert(out []float32, vals arrow.Array, s, e int, allowNaN bool) int {
	switch a := vals.(type) {
	case *array.Float64:
		return convertFloat(out, a.Float64Values()[s:e], allowNaN)
	case *array.Float32:
		return convertFloat(out, a.Float32Values()[s:e], allowNaN)
	case *array.Int8:
		convertInt(out, a.Int8Values()[s:e])
	case *array.Int16:
		convertInt(out, a.Int16Values()[s:e])
	case *array.Int32:
		convertInt(out, a.Int32Values()[s:e])
	case *array.Int64:
		convertInt(out, a.Int64Values()[s:e])
	case *array.Uint8:
		convertInt(out, a.Uint8Values()[s:e])
	case *array.Uint16:
		convertInt(out, a.Uint16Values()[s:e])
	case *array.Uint32:
		convertInt(out, a.Uint32Values()[s:e])
	case *array.Uint64:
		convertInt(out, a.Uint64Values()[s:e])
	default:
		// Unreachable: Check admits only the types above.
		panic(fmt.Sprintf("arrowio: unexpected array type %s", vals.DataType()))
	}
	return -1
}

func convertFloat[T float32 | float64](out []float32, in []T, allowNaN bool) int {
	out = out[:len(in)]
	var acc float32
	for i, v := range in {
		f := float32(v)
		out[i] = f
		acc += f - f // 0 for finite f, NaN once any f is NaN or ±Inf
	}
	if allowNaN || acc == 0 {
		return -1
	}
	for i, f := range out {
		if f-f != 0 {
			return i
		}
	}
	return -1
}

func convertInt[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](out []float32, in []T) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(v)
	}
}

// value returns vals[i] as float64, for error messages.
func value(vals arrow.Array, i int) float64 {
	switch a := vals.(type) {
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	}
	return math.NaN()
}
