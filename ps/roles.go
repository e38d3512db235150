package ps

import (
	"fmt"

	"github.com/gophas/gophas/gokernel"
)

// Role is what training does to a weight tensor (gokernel.Model.Roles),
// which decides how the pushes of several workers merge into it. The
// server learns the roles with the weights (SetWeightsRoles: the driver
// loads a model with its kernel's roles); without them every tensor is
// Trainable.
//
// The merge rule, by role and Mode, for N workers (WithWorkers, else the
// workers registered):
//
//   - Trainable: synchronous, the mean of the round's deltas; asynchronous
//     and hogwild, each delta added alone, times 1/N with WithScale.
//   - Moving (BatchNormalization's moving mean and variance): always the
//     mean of the workers' contributions, never their sum. Synchronous, the
//     mean of the round's deltas, which is the mean of the workers' values
//     since they all start the round from the same pulled ones;
//     asynchronous and hogwild, each delta added times 1/N whatever
//     WithScale says, so N workers that pulled the same statistics leave
//     them at the mean of theirs. A sum would move them N times as far as
//     any worker did: past every worker's value, and, for a variance
//     falling from 1 towards a small value, below zero.
//   - Frozen (every weight of a layer with trainable false): not pushed at
//     all. A push holds the Trainable and Moving tensors alone, in order
//     (PushShapes); the server never changes a Frozen tensor, bit for bit.
//
// Gradient pushes (WithOptimizer) need every tensor Trainable: an optimizer
// step on a statistic or on a frozen weight would be wrong.
type Role = gokernel.Role

// The roles, as gokernel names them.
const (
	Trainable = gokernel.Trainable
	Moving    = gokernel.Moving
	Frozen    = gokernel.Frozen
)

// scales are the factors that one asynchronous or hogwild delta is applied
// with: trained for Trainable tensors, moving for Moving ones.
type scales struct{ trained, moving float32 }

// one applies deltas as they are (a synchronous round's mean).
var one = scales{1, 1}

// of returns the factor for weight tensor i. The caller holds mu.
func (s scales) of(p *Params, i int) float32 {
	if p.roles[i] == Moving {
		return s.moving
	}
	return s.trained
}

// deltaScales returns the factors of an asynchronous or hogwild push of
// kind (Role's rule). Holds meta.
func (p *Params) deltaScales(kind Kind) scales {
	if kind != Delta {
		return one
	}
	n := p.cfg.workers
	if n == 0 {
		n = len(p.workers)
	}
	inv := 1 / float32(max(n, 1))
	if p.cfg.scale {
		return scales{inv, inv}
	}
	return scales{1, inv}
}

// setRoles records the roles of ws (nil: all Trainable) and which tensors a
// push holds. The caller holds mu.
func (p *Params) setRoles(roles []Role) {
	p.roles = make([]Role, len(p.weights))
	copy(p.roles, roles)
	p.pushIdx = p.pushIdx[:0]
	p.fixed = false
	for i, r := range p.roles {
		if r != Frozen {
			p.pushIdx = append(p.pushIdx, i)
		}
		if r != Trainable {
			p.fixed = true
		}
	}
}

// checkRoles reports an error unless roles is nil or gives a known role to
// each of n tensors.
func checkRoles(roles []Role, n int) error {
	if roles == nil {
		return nil
	}
	if len(roles) != n {
		return fmt.Errorf("ps: %d roles for %d tensors", len(roles), n)
	}
	for i, r := range roles {
		if r > Frozen {
			return fmt.Errorf("ps: tensor %d: unknown role %v", i, r)
		}
	}
	return nil
}

// PushShapes lists the tensors a push holds, in order: the model's
// Trainable and Moving tensors (Frozen ones are not pushed), or nil before
// SetWeights.
func (p *Params) PushShapes() []TensorInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.weights == nil {
		return nil
	}
	out := make([]TensorInfo, len(p.pushIdx))
	for k, i := range p.pushIdx {
		t := p.weights[i]
		out[k] = TensorInfo{Name: t.Name, Shape: append([]int(nil), t.Shape...)}
	}
	return out
}

// Roles returns the role of each weight tensor, in order, or nil before
// SetWeights.
func (p *Params) Roles() []Role {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.weights == nil {
		return nil
	}
	return append([]Role(nil), p.roles...)
}

// frozenNote explains a push with the wrong number of tensors when some are
// frozen. The caller holds mu.
func (p *Params) frozenNote() string {
	if n := len(p.weights) - len(p.pushIdx); n > 0 {
		return fmt.Sprintf(" (the model has %d tensors; its %d frozen ones, of layers with trainable false, are not pushed)", len(p.weights), n)
	}
	return ""
}

// frozenNoteLocked is frozenNote for a caller that does not hold mu.
func (p *Params) frozenNoteLocked() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.frozenNote()
}
