package gokernel

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gophas/gophas/gokernel/internal/vec"
)

// window is the geometry of a sliding window over a channels-last grid of
// samples (a convolution's kernel, a pooling's pool): a 1-D op is a 2-D
// one of height 1. Output position (oh, ow) and tap (i, j) read the grid
// at
//
//	h = oh·sh + i·dh - padT,  w = ow·sw + j·dw - padL
//
// where a position outside the grid reads zero (a convolution) or nothing
// (a pooling).
type window struct {
	inH, inW   int // the grid
	outH, outW int // the window positions
	kh, kw     int // taps
	sh, sw     int // strides
	dh, dw     int // dilations
	padT, padL int
}

// windowArgs are a window op's Keras arguments for one rank.
type windowArgs struct {
	rank     int // 1 or 2 spatial axes
	size     []int
	strides  []int
	dilation []int
	padding  string // valid, same, causal
}

// outLen is the output length and leading padding of one axis, as Keras
// (and XLA's SAME) computes them: valid: ⌊(in - keff)/s⌋ + 1; same:
// ⌈in/s⌉ with max((out-1)·s + keff - in, 0) padding, the smaller half
// before; causal: keff-1 padding before, then valid. keff = (k-1)·d + 1.
func outLen(in, k, s, d int, padding string) (out, pad int, err error) {
	keff := (k-1)*d + 1
	switch padding {
	case "valid":
		if in < keff {
			return 0, 0, fmt.Errorf("a window of %d (dilated) does not fit an axis of %d", keff, in)
		}
		return (in-keff)/s + 1, 0, nil
	case "same":
		out = (in + s - 1) / s
		total := max((out-1)*s+keff-in, 0)
		return out, total / 2, nil
	case "causal":
		return (in-1)/s + 1, keff - 1, nil
	}
	return 0, 0, fmt.Errorf("padding %q", padding)
}

// newWindow returns the window of a on spatial axes sp (1 or 2 of them).
func newWindow(a windowArgs, sp []int) (window, error) {
	if len(sp) != a.rank {
		return window{}, fmt.Errorf("want %d spatial axes and channels, got a sample of rank %d", a.rank, len(sp)+1)
	}
	w := window{inH: 1, outH: 1, kh: 1, sh: 1, dh: 1}
	var err error
	if a.rank == 2 {
		w.inH, w.kh, w.sh, w.dh = sp[0], a.size[0], a.strides[0], a.dilation[0]
		if w.outH, w.padT, err = outLen(w.inH, w.kh, w.sh, w.dh, a.padding); err != nil {
			return w, err
		}
	}
	i := a.rank - 1
	w.inW, w.kw, w.sw, w.dw = sp[i], a.size[i], a.strides[i], a.dilation[i]
	w.outW, w.padL, err = outLen(w.inW, w.kw, w.sw, w.dw, a.padding)
	return w, err
}

// outShape is the per-sample output shape for ch channels.
func (w window) outShape(rank, ch int) []int {
	if rank == 1 {
		return []int{w.outW, ch}
	}
	return []int{w.outH, w.outW, ch}
}

// identity reports whether the window reads each grid position once, in
// order: a 1×1 kernel with stride 1 and no padding.
func (w window) identity() bool {
	return w.kh == 1 && w.kw == 1 && w.sh == 1 && w.sw == 1 && w.padT == 0 && w.padL == 0 && w.inH == w.outH && w.inW == w.outW
}

// im2col writes the patches of samples [n0, n1) of x (each inH×inW×ch
// channels-last) into col: one row per sample and output position, of
// kh·kw·cn values in (i, j, channel) order, channels [c0, c0+cn); zero
// outside the grid. A convolution is then col·K with its kernel K as a
// (kh·kw·cn, filters) matrix.
func (w window) im2col(x []float32, ch, n0, n1, c0, cn int, col []float32) {
	k := w.kh * w.kw * cn
	// With all channels and no horizontal dilation, the kw taps of a row
	// of the kernel are one run of kw·ch values in x.
	runs := cn == ch && w.dw == 1
	r := 0
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			for ow := 0; ow < w.outW; ow++ {
				row := col[r*k : (r+1)*k]
				r++
				p := 0
				v0 := ow*w.sw - w.padL
				for i := 0; i < w.kh; i++ {
					h := oh*w.sh + i*w.dh - w.padT
					if h < 0 || h >= w.inH {
						clear(row[p : p+w.kw*cn])
						p += w.kw * cn
						continue
					}
					if runs && v0 >= 0 && v0+w.kw <= w.inW {
						o := (h*w.inW + v0) * ch
						copyRun(row[p:p+w.kw*ch], xs[o:o+w.kw*ch])
						p += w.kw * ch
						continue
					}
					for j := 0; j < w.kw; j++ {
						v := v0 + j*w.dw
						switch {
						case v < 0 || v >= w.inW:
							clear(row[p : p+cn])
						case cn == 1:
							row[p] = xs[(h*w.inW+v)*ch+c0]
						default:
							o := (h*w.inW+v)*ch + c0
							copy(row[p:p+cn], xs[o:o+cn])
						}
						p += cn
					}
				}
			}
		}
	}
}

// col2im adds the patches in col back onto the grid: the adjoint of
// im2col, for ∂L/∂x = Σ over the patches that read x.
func (w window) col2im(col []float32, ch, n0, n1, c0, cn int, x []float32) {
	k := w.kh * w.kw * cn
	runs := cn == ch && w.dw == 1
	r := 0
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			for ow := 0; ow < w.outW; ow++ {
				row := col[r*k : (r+1)*k]
				r++
				p := 0
				v0 := ow*w.sw - w.padL
				for i := 0; i < w.kh; i++ {
					h := oh*w.sh + i*w.dh - w.padT
					if h < 0 || h >= w.inH {
						p += w.kw * cn
						continue
					}
					if runs && v0 >= 0 && v0+w.kw <= w.inW {
						o := (h*w.inW + v0) * ch
						addRun(xs[o:o+w.kw*ch], row[p:p+w.kw*ch])
						p += w.kw * ch
						continue
					}
					for j := 0; j < w.kw; j++ {
						v := v0 + j*w.dw
						if v >= 0 && v < w.inW {
							addRun(xs[(h*w.inW+v)*ch+c0:][:cn], row[p:p+cn])
						}
						p += cn
					}
				}
			}
		}
	}
}

// copyRun copies src into dst: a run of patch values, often a few (a
// kernel row of one channel), which copy would hand to memmove.
func copyRun(dst, src []float32) {
	if len(src) > 16 {
		copy(dst, src)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = v
	}
}

// addRun adds src to dst: col2im's runs, vectorised unless they are short.
func addRun(dst, src []float32) {
	if len(src) >= 16 {
		vec.Add(dst, src)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// chunkSamples is how many samples' patches fit in limit values, at least
// one.
func chunkSamples(rows, perSample, limit int) int {
	return max(1, min(rows, limit/max(1, perSample)))
}

// colLimit bounds the values of the patch matrices a convolution builds at
// once (16 MiB each); bigger batches are done in chunks of samples. Tests
// lower it.
var colLimit = 4 << 20

// colKeep bounds the patches a convolution keeps from a training forward
// pass for its backward pass (32 MiB); beyond it they are built again.
// Tests lower it.
var colKeep = 8 << 20

// parseWindowArgs reads the window arguments of a rank-r layer: the size
// key (kernel_size or pool_size), strides (default: the size if
// stridesDefaultSize, else 1), dilation_rate (if dilation), padding (the
// allowed values listed) and data_format (channels_last only).
func parseWindowArgs(c *obj, r int, sizeKey string, stridesDefaultSize, dilation bool, paddings ...string) (windowArgs, error) {
	a := windowArgs{rank: r}
	var err error
	if a.size, err = tuple(c, sizeKey, r, nil); err != nil {
		return a, err
	}
	if a.size == nil {
		return a, c.errf("%s is required", sizeKey)
	}
	def := ones(r)
	if stridesDefaultSize {
		def = a.size
	}
	if a.strides, err = tuple(c, "strides", r, def); err != nil {
		return a, err
	}
	a.dilation = ones(r)
	if dilation {
		if a.dilation, err = tuple(c, "dilation_rate", r, a.dilation); err != nil {
			return a, err
		}
	}
	if a.padding, err = c.str("padding", "valid"); err != nil {
		return a, err
	}
	a.padding = strings.ToLower(a.padding)
	ok := false
	for _, p := range paddings {
		ok = ok || p == a.padding
	}
	if !ok {
		return a, c.errf("padding %q is not supported (%s are)", a.padding, strings.Join(paddings, ", "))
	}
	return a, channelsLast(c)
}

// channelsLast checks data_format.
func channelsLast(c *obj) error {
	df, err := c.str("data_format", "channels_last")
	if err != nil {
		return err
	}
	if df != "channels_last" {
		return c.errf("data_format %q is not supported (channels_last is)", df)
	}
	return nil
}

func ones(r int) []int {
	o := make([]int, r)
	for i := range o {
		o[i] = 1
	}
	return o
}

// tuple reads a key that Keras writes as an int or a list of r positive
// ints (kernel_size, strides, ...); def if absent.
func tuple(c *obj, key string, r int, def []int) ([]int, error) {
	return tupleFrom(c, key, r, def, 1)
}

// tupleFrom is tuple with values of at least lo.
func tupleFrom(c *obj, key string, r int, def []int, lo int) ([]int, error) {
	raw := c.get(key)
	if isNull(raw) {
		return def, nil
	}
	var one float64
	var list []float64
	if json.Unmarshal(raw, &one) == nil {
		list = make([]float64, r)
		for i := range list {
			list[i] = one
		}
	} else if err := json.Unmarshal(raw, &list); err != nil || len(list) != r {
		return nil, c.errf("%s: want an integer or a list of %d, got %s", key, r, short(raw))
	}
	out := make([]int, r)
	for i, v := range list {
		if v < float64(lo) || v != float64(int(v)) {
			return nil, c.errf("%s %s: want integers of at least %d", key, short(raw), lo)
		}
		out[i] = int(v)
	}
	return out, nil
}
