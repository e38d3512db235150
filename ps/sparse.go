package ps

import "math"

// sparsify adds update to the residual, picks the values to send (top-k
// fraction or threshold), removes them from the residual, and returns the
// Sparse payload. update is not modified.
func (c *Client) sparsify(update [][]float32) []byte {
	if len(c.residual) != len(update) {
		c.residual = make([][]float32, len(update))
	}
	total := 0
	for i, u := range update {
		if len(c.residual[i]) != len(u) {
			c.residual[i] = make([]float32, len(u))
		}
		r := c.residual[i]
		for j, v := range u {
			r[j] += v
		}
		total += len(u)
	}
	thr := c.cfg.threshold
	k := total
	if c.cfg.topK > 0 {
		k = max(1, int(math.Ceil(c.cfg.topK*float64(total))))
		if k < total {
			c.scratch = c.scratch[:0]
			for _, r := range c.residual {
				for _, v := range r {
					c.scratch = append(c.scratch, abs32(v))
				}
			}
			thr = max(thr, kthLargest(c.scratch, k))
		}
	}
	var idx []uint32
	var val []float32
	base := 0
	for _, r := range c.residual {
		for j, v := range r {
			if len(idx) < k && v != 0 && abs32(v) >= thr {
				idx = append(idx, uint32(base+j))
				val = append(val, v)
				r[j] = 0
			}
		}
		base += len(r)
	}
	return appendSparse(make([]byte, 0, 4+8*len(idx)), idx, val)
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// kthLargest returns the k-th largest of xs (1-based), reordering xs
// (quickselect, expected linear time).
func kthLargest(xs []float32, k int) float32 {
	lo, hi, want := 0, len(xs)-1, k-1
	for lo < hi {
		p := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] > p {
				i++
			}
			for xs[j] < p {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return xs[want]
		}
	}
	return xs[want]
}
