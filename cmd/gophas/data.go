package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// readTable reads a CSV (a name ending in .csv) or Arrow IPC file into a
// dataset. features is a comma-separated list of column names ("" for every
// column but the label); label names the label column ("" for the last).
func readTable(path, features, label string) (*dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	var d *dataset
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		d, err = readCSV(bufio.NewReader(f), features, label)
	} else {
		d, err = readArrow(f, features, label)
	}
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	return d, nil
}

// splitNames splits a comma-separated list of column names.
func splitNames(s string) []string {
	if s == "" {
		return nil
	}
	names := strings.Split(s, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	return names
}

// pickColumns returns the indexes of the feature columns and of the label
// column among names.
func pickColumns(names []string, features, label string) (feat []int, lab int, err error) {
	index := func(n string) (int, error) {
		i := slices.Index(names, n)
		if i < 0 {
			return 0, fmt.Errorf("no column %q (columns: %s)", n, strings.Join(names, ", "))
		}
		return i, nil
	}
	if len(names) < 2 {
		return nil, 0, fmt.Errorf("%d column(s), want features and a label", len(names))
	}
	lab = len(names) - 1
	if label != "" {
		if lab, err = index(label); err != nil {
			return nil, 0, err
		}
	}
	if fs := splitNames(features); fs != nil {
		for _, n := range fs {
			i, err := index(n)
			if err != nil {
				return nil, 0, err
			}
			if i == lab {
				return nil, 0, fmt.Errorf("column %q is both a feature and the label", n)
			}
			feat = append(feat, i)
		}
		return feat, lab, nil
	}
	for i := range names {
		if i != lab {
			feat = append(feat, i)
		}
	}
	return feat, lab, nil
}

// readCSV reads a header row and numeric rows.
func readCSV(r io.Reader, features, label string) (*dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("empty CSV, want a header row")
	}
	if err != nil {
		return nil, err
	}
	names := slices.Clone(header)
	feat, lab, err := pickColumns(names, features, label)
	if err != nil {
		return nil, err
	}
	d := &dataset{xWidth: len(feat), yWidth: 1}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		parse := func(col int) (float32, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[col]), 32)
			if err != nil {
				return 0, fmt.Errorf("line %d, column %q: %q is not a number", line, names[col], rec[col])
			}
			return float32(v), nil
		}
		for _, c := range feat {
			v, err := parse(c)
			if err != nil {
				return nil, err
			}
			d.x = append(d.x, v)
		}
		v, err := parse(lab)
		if err != nil {
			return nil, err
		}
		d.y = append(d.y, v)
		d.rows++
	}
	return d, nil
}

// readArrow reads an Arrow IPC file (or, failing its magic, an IPC stream).
// The features are one list or fixed-size-list column of numbers, or numeric
// columns; the label is a numeric column (or a list column for several
// outputs).
func readArrow(f *os.File, features, label string) (*dataset, error) {
	mem := memory.DefaultAllocator
	var (
		schema  *arrow.Schema
		records func(yield func(arrow.RecordBatch) error) error
	)
	if fr, err := ipc.NewFileReader(f, ipc.WithAllocator(mem)); err == nil {
		defer fr.Close()
		schema = fr.Schema()
		records = func(yield func(arrow.RecordBatch) error) error {
			for i := 0; i < fr.NumRecords(); i++ {
				rec, err := fr.RecordBatch(i)
				if err != nil {
					return err
				}
				if err := yield(rec); err != nil {
					return err
				}
			}
			return nil
		}
	} else {
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return nil, serr
		}
		sr, serr := ipc.NewReader(f, ipc.WithAllocator(mem))
		if serr != nil {
			return nil, fmt.Errorf("not an Arrow IPC file (%v) nor stream (%w)", err, serr)
		}
		defer sr.Release()
		schema = sr.Schema()
		records = func(yield func(arrow.RecordBatch) error) error {
			for sr.Next() {
				if err := yield(sr.RecordBatch()); err != nil {
					return err
				}
			}
			return sr.Err()
		}
	}
	names := make([]string, schema.NumFields())
	for i, fl := range schema.Fields() {
		names[i] = fl.Name
	}
	feat, lab, err := pickColumns(names, features, label)
	if err != nil {
		return nil, err
	}
	d := &dataset{}
	err = records(func(rec arrow.RecordBatch) error {
		base := d.rows
		n := int(rec.NumRows())
		var x [][]float32 // per row
		x = make([][]float32, n)
		for _, c := range feat {
			if err := appendColumn(x, rec.Column(c), names[c], base); err != nil {
				return err
			}
		}
		y := make([][]float32, n)
		if err := appendColumn(y, rec.Column(lab), names[lab], base); err != nil {
			return err
		}
		for i := range n {
			if d.rows == 0 {
				d.xWidth, d.yWidth = len(x[i]), len(y[i])
			}
			if len(x[i]) != d.xWidth {
				return fmt.Errorf("row %d has %d feature values, row 1 has %d", base+i+1, len(x[i]), d.xWidth)
			}
			if len(y[i]) != d.yWidth {
				return fmt.Errorf("row %d has %d label values, row 1 has %d", base+i+1, len(y[i]), d.yWidth)
			}
			d.x = append(d.x, x[i]...)
			d.y = append(d.y, y[i]...)
			d.rows++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// appendColumn appends row i of col to rows[i]: one number, or the numbers
// of a list. base is the number of rows before this batch (for messages).
func appendColumn(rows [][]float32, col arrow.Array, name string, base int) error {
	switch c := col.(type) {
	case array.ListLike:
		vals := c.ListValues()
		for i := range rows {
			if c.IsNull(i) {
				return fmt.Errorf("row %d, column %q: null", base+i+1, name)
			}
			from, to := c.ValueOffsets(i)
			for j := from; j < to; j++ {
				v, err := number(vals, int(j))
				if err != nil {
					return fmt.Errorf("row %d, column %q, element %d: %w", base+i+1, name, j-from, err)
				}
				rows[i] = append(rows[i], v)
			}
		}
		return nil
	default:
		for i := range rows {
			v, err := number(col, i)
			if err != nil {
				return fmt.Errorf("row %d, column %q: %w", base+i+1, name, err)
			}
			rows[i] = append(rows[i], v)
		}
		return nil
	}
}

// number returns value i of a numeric or boolean array as float32.
func number(a arrow.Array, i int) (float32, error) {
	if a.IsNull(i) {
		return 0, errors.New("null")
	}
	switch c := a.(type) {
	case *array.Float32:
		return c.Value(i), nil
	case *array.Float64:
		return float32(c.Value(i)), nil
	case *array.Float16:
		return c.Value(i).Float32(), nil
	case *array.Int8:
		return float32(c.Value(i)), nil
	case *array.Int16:
		return float32(c.Value(i)), nil
	case *array.Int32:
		return float32(c.Value(i)), nil
	case *array.Int64:
		return float32(c.Value(i)), nil
	case *array.Uint8:
		return float32(c.Value(i)), nil
	case *array.Uint16:
		return float32(c.Value(i)), nil
	case *array.Uint32:
		return float32(c.Value(i)), nil
	case *array.Uint64:
		return float32(c.Value(i)), nil
	case *array.Boolean:
		if c.Value(i) {
			return 1, nil
		}
		return 0, nil
	default:
		return 0, fmt.Errorf("type %s is not numeric", a.DataType())
	}
}
