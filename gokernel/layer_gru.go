package gokernel

// gruCell is the step of Keras' GRU (see rnn for the sequence). With the
// kernel W, recurrent kernel U and biases cut into the gates z, r, h
// (units columns each, in that order), σ the recurrent_activation
// (sigmoid) and φ the activation (tanh):
//
//	reset_after true (the default; bias (2, 3·units): input and recurrent):
//	  m = h'·U + b_rec,  x = x·W + b_in
//	  z = σ(x_z + m_z),  r = σ(x_r + m_r),  ĥ = φ(x_h + r⊙m_h)
//	reset_after false (bias (3·units)):
//	  x = x·W + b
//	  z = σ(x_z + h'·U_z),  r = σ(x_r + h'·U_r),  ĥ = φ(x_h + (r⊙h')·U_h)
//	h = z⊙h' + (1-z)⊙ĥ
//
// and backward, from dh:
//
//	dĥ = dh⊙(1-z),  dz = dh⊙(h'-ĥ),  dh' = dh⊙z + (the gates' terms)
//	da_h = φ'·dĥ,  da_z = σ'·dz
//	reset_after:  dr = da_h⊙m_h;  dm = (da_z, da_r, da_h⊙r)
//	              dh' += dm·Uᵀ, dU += h'ᵀ·dm, db_rec += Σ dm
//	otherwise:    d(r⊙h') = da_h·U_hᵀ, dr = d(r⊙h')⊙h', dh' += d(r⊙h')⊙r
//	              dh' += (da_z, da_r)·U_zrᵀ, dU_zr += h'ᵀ·(da_z, da_r),
//	              dU_h += (r⊙h')ᵀ·da_h
//	da_r = σ'·dr,  and the input projection's gradient is (da_z, da_r, da_h)
//
// (with recurrent_dropout each gate reads h'⊙m_gate in its product
// instead of h').
type gruCell struct {
	resetAfter bool
}

func parseGRU(c *obj) (Layer, error) {
	ra, err := c.boolean("reset_after", true)
	if err != nil {
		return nil, err
	}
	return parseRNN(c, "GRU", gruCell{resetAfter: ra}, true)
}

func (gruCell) name() string { return "gru_cell" }
func (gruCell) gates() int   { return 3 }
func (gruCell) carry() bool  { return false }
func (g gruCell) saves() int { return 4 } // z, r, ĥ, and m_h (reset_after) or r⊙h' (not)
func (g gruCell) biasShape(u int) []int {
	if g.resetAfter {
		return []int{2, 3 * u}
	}
	return []int{3 * u}
}
func (g gruCell) inputBias(b []float32) []float32 {
	if g.resetAfter {
		return b[:len(b)/2]
	}
	return b
}

func (g gruCell) step(l *rnn, s *rnnStep) {
	u, G := s.u, 3
	m := s.tmp[:s.rows*G*u]
	if g.resetAfter {
		s.recProduct(l, m, G*u, 0, G, s.hp, 0)
		if s.bias != nil {
			addBias(m, s.bias[G*u:])
		}
	} else {
		s.recProduct(l, m, G*u, 0, 2, s.hp, 0)
	}
	s.each(l, 0)
	if !g.resetAfter {
		// ĥ's pre-activation: x_h + (r⊙h')·U_h, rows at once.
		rh := s.tmp2[:s.rows*u]
		for r := 0; r < s.rows; r++ {
			copy(rh[r*u:(r+1)*u], s.save[r*4*u+3*u:(r+1)*4*u])
		}
		g.hProduct(l, s, rh)
	}
	s.each(l, 1)
}

// hProduct adds (r⊙h')·U_h into the ĥ columns of s.z (reset_after
// false). Keras' implementation 1 multiplies the gate's dropout mask into
// h' before r.
func (g gruCell) hProduct(l *rnn, s *rnnStep, rh []float32) {
	u, G := s.u, 3
	if s.rmask != nil {
		m := s.rmask[min(2, len(s.rmask)-1)]
		for i := range rh {
			rh[i] *= m[i]
		}
	}
	gemmAdd(s.threads, s.rows, u, u, rh, u, s.U[2*u:], G*u, s.z[2*u:], G*u)
}

func (g gruCell) back(l *rnn, s *rnnStep) {
	u, G := s.u, 3
	s.each(l, 2)
	if g.resetAfter {
		// dm = (da_z, da_r, da_h⊙r), after da_r is known.
		s.each(l, 3)
		dm := s.tmp[:s.rows*G*u]
		s.recBack(l, dm, G*u, 0, G, s.hp, s.dhp)
		if s.dRecBias != nil {
			addColSum(dm, s.dRecBias[G*u:])
		}
		return
	}
	// reset_after false: d(r⊙h') = da_h·U_hᵀ.
	drh := s.tmp[:s.rows*u]
	gemmNT(s.threads, s.rows, u, u, s.dz[2*u:], G*u, s.U[2*u:], G*u, drh, u)
	if s.rmask != nil {
		m := s.rmask[min(2, len(s.rmask)-1)]
		for i := range drh {
			drh[i] *= m[i]
		}
	}
	s.each(l, 4)
	if s.dU != nil {
		// dU_h += (r⊙h'⊙m)ᵀ·da_h, with r⊙h' as step kept it.
		rh := s.tmp2[:s.rows*u]
		for r := 0; r < s.rows; r++ {
			copy(rh[r*u:(r+1)*u], s.save[r*4*u+3*u:(r+1)*4*u])
		}
		if s.rmask != nil {
			m := s.rmask[min(2, len(s.rmask)-1)]
			for i := range rh {
				rh[i] *= m[i]
			}
		}
		gemmTNAdd(s.threads, u, u, s.rows, rh, u, s.dz[2*u:], G*u, s.dU[2*u:], G*u)
	}
	s.recBack(l, s.dz, G*u, 0, 2, s.hp, s.dhp)
}

// rows: phases 0 and 1 are step's (the gates z and r, with r⊙h' or r⊙m_h;
// ĥ and h), 2 to 4 back's (the gradients of z and ĥ; of r and dm with
// reset_after; of r and h' through r⊙h' without).
func (g gruCell) rows(l *rnn, s *rnnStep, phase, lo, hi int) {
	u, G := s.u, 3
	for r := lo; r < hi; r++ {
		z := s.z[r*G*u : (r+1)*G*u]
		a := s.save[r*4*u : (r+1)*4*u]
		zg, rg, hh := a[:u], a[u:2*u], a[2*u:3*u]
		hp := s.hp[r*u : (r+1)*u]
		switch phase {
		case 0:
			mr := s.tmp[r*G*u : (r+1)*G*u]
			for j := 0; j < 2*u; j++ {
				z[j] += mr[j]
			}
			l.recAct.forward(z[:2*u], a[:2*u], u)
			if g.resetAfter {
				mh := a[3*u:]
				copy(mh, mr[2*u:])
				for j := 0; j < u; j++ {
					z[2*u+j] += rg[j] * mh[j]
				}
			} else {
				rh := a[3*u:]
				for j := range rh {
					rh[j] = rg[j] * hp[j]
				}
			}
		case 1:
			l.act.forward(z[2*u:], hh, u)
			h := s.h[r*u : (r+1)*u]
			for j := range h {
				h[j] = zg[j]*hp[j] + (1-zg[j])*hh[j]
			}
		case 2:
			dh := s.dh[r*u : (r+1)*u]
			dz := s.dz[r*G*u : (r+1)*G*u]
			dhp := s.dhp[r*u : (r+1)*u]
			for j := 0; j < u; j++ {
				dz[j] = dh[j] * (hp[j] - hh[j]) // ∂L/∂z
				dz[2*u+j] = dh[j] * (1 - zg[j]) // ∂L/∂ĥ
				dhp[j] = dh[j] * zg[j]
			}
			l.act.backward(z[2*u:], hh, dz[2*u:], dz[2*u:], u)
			if g.resetAfter {
				mh := a[3*u:]
				for j := 0; j < u; j++ {
					dz[u+j] = dz[2*u+j] * mh[j] // ∂L/∂r
				}
			}
			l.recAct.backward(z[:u], zg, dz[:u], dz[:u], u)
		case 3:
			dz := s.dz[r*G*u : (r+1)*G*u]
			l.recAct.backward(z[u:2*u], rg, dz[u:2*u], dz[u:2*u], u)
			dm := s.tmp[r*G*u : (r+1)*G*u]
			copy(dm, dz)
			for j := 0; j < u; j++ {
				dm[2*u+j] *= rg[j]
			}
		case 4:
			d := s.tmp[r*u : (r+1)*u]
			dz := s.dz[r*G*u : (r+1)*G*u]
			dhp := s.dhp[r*u : (r+1)*u]
			for j := 0; j < u; j++ {
				dz[u+j] = d[j] * hp[j]
				dhp[j] += d[j] * rg[j]
			}
			l.recAct.backward(z[u:2*u], rg, dz[u:2*u], dz[u:2*u], u)
		}
	}
}
