package vec

// MaxPool2 and MaxPool2Back are the max pooling most convnets use, 2×2
// windows with stride 2, one output row at a time over channels-last rows.
// With the four taps of output position ow and channel c
//
//	a = r0[2ow·ch+c], b = r0[(2ow+1)·ch+c], d = r1[2ow·ch+c], e = r1[(2ow+1)·ch+c]
//
// the forward pass takes m = a, then for t = b, d, e in turn m = t where
// t > m: y[ow·ch+c] = m, the first maximum in the order a, b, d, e (a NaN
// tap is never greater, so it is kept only as a). Its code, 0 for a, 1 for
// b, 2 for d, 3 for e, is stored as bits: per output position, for each
// group of eight channels, one byte of the codes' low bits and one of
// their high bits, channel 8g+i in bit i (ArgBytes(ch) bytes). The
// backward pass sends dy[ow·ch+c] to the tap its code names and +0 to the
// other three.

// ArgBytes is the number of code bytes MaxPool2 stores per output position
// for ch channels.
func ArgBytes(ch int) int { return 2 * ((ch + 7) / 8) }

// MaxPool2 computes the outW·ch outputs y of one output row from the input
// rows r0 and r1 (each at least 2·outW positions of ch channels) and, when
// arg is not nil, their codes (outW·ArgBytes(ch) bytes).
func MaxPool2(y []float32, arg []byte, r0, r1 []float32, outW, ch int) {
	if outW <= 0 || ch <= 0 {
		return
	}
	_, _, _ = y[outW*ch-1], r0[2*outW*ch-1], r1[2*outW*ch-1]
	if arg != nil {
		_ = arg[outW*ArgBytes(ch)-1]
	}
	if hasAVX2 && ch%8 == 0 {
		var ap *byte
		if arg != nil {
			ap = &arg[0]
		}
		maxPool2AVX2(&y[0], ap, &r0[0], &r1[0], outW, ch)
		return
	}
	MaxPool2Ref(y, arg, r0, r1, outW, ch)
}

// MaxPool2Ref is the plain loop MaxPool2 is tested against.
func MaxPool2Ref(y []float32, arg []byte, r0, r1 []float32, outW, ch int) {
	nb := ArgBytes(ch)
	for ow := range outW {
		yr := y[ow*ch : (ow+1)*ch]
		a, b := r0[2*ow*ch:][:ch], r0[(2*ow+1)*ch:][:ch]
		d, e := r1[2*ow*ch:][:ch], r1[(2*ow+1)*ch:][:ch]
		var ar []byte
		if arg != nil {
			ar = arg[ow*nb : (ow+1)*nb]
			clear(ar)
		}
		for c := range yr {
			m, code := a[c], byte(0)
			if b[c] > m {
				m, code = b[c], 1
			}
			if d[c] > m {
				m, code = d[c], 2
			}
			if e[c] > m {
				m, code = e[c], 3
			}
			yr[c] = m
			if ar != nil {
				g, bit := c/8, byte(1)<<(c%8)
				if code&1 != 0 {
					ar[2*g] |= bit
				}
				if code&2 != 0 {
					ar[2*g+1] |= bit
				}
			}
		}
	}
}

// MaxPool2Back sets the input gradient rows dx0 and dx1 (the rows MaxPool2
// read as r0 and r1; their first 2·outW positions) from the output
// gradient row dy and the codes arg of the forward pass.
func MaxPool2Back(dx0, dx1, dy []float32, arg []byte, outW, ch int) {
	if outW <= 0 || ch <= 0 {
		return
	}
	_, _, _, _ = dx0[2*outW*ch-1], dx1[2*outW*ch-1], dy[outW*ch-1], arg[outW*ArgBytes(ch)-1]
	if hasAVX2 && ch%8 == 0 {
		maxPool2BackAVX2(&dx0[0], &dx1[0], &dy[0], &arg[0], outW, ch, &bitLanes)
		return
	}
	MaxPool2BackRef(dx0, dx1, dy, arg, outW, ch)
}

// MaxPool2BackRef is the plain loop MaxPool2Back is tested against.
func MaxPool2BackRef(dx0, dx1, dy []float32, arg []byte, outW, ch int) {
	nb := ArgBytes(ch)
	for ow := range outW {
		gr := dy[ow*ch : (ow+1)*ch]
		ar := arg[ow*nb : (ow+1)*nb]
		a, b := dx0[2*ow*ch:][:ch], dx0[(2*ow+1)*ch:][:ch]
		d, e := dx1[2*ow*ch:][:ch], dx1[(2*ow+1)*ch:][:ch]
		for c, g := range gr {
			bit := byte(1) << (c % 8)
			code := 0
			if ar[2*(c/8)]&bit != 0 {
				code |= 1
			}
			if ar[2*(c/8)+1]&bit != 0 {
				code |= 2
			}
			a[c], b[c], d[c], e[c] = 0, 0, 0, 0
			switch code {
			case 0:
				a[c] = g
			case 1:
				b[c] = g
			case 2:
				d[c] = g
			default:
				e[c] = g
			}
		}
	}
}

// bitLanes is lane i's bit, 1<<i, for the assembly to turn a code byte
// into lane masks.
var bitLanes = [8]int32{1, 2, 4, 8, 16, 32, 64, 128}
