package gokernel

// parseAdditiveAttention parses Keras' AdditiveAttention: Attention (see
// attention) with the additive score s_ij = Σ_d c_d·tanh(q_id + k_jd),
// where c is the layer's scale vector (dim,) with use_scale (the default,
// initialized glorot_uniform), else ones.
func parseAdditiveAttention(c *obj) (Layer, error) {
	l := &attention{mode: "additive"}
	var err error
	if l.useScale, err = c.boolean("use_scale", true); err != nil {
		return nil, err
	}
	return l, l.parseDropout(c)
}
