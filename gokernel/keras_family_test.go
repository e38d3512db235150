package gokernel

import "testing"

// familyFixtures are the fixture files make_family_fixtures.py writes, one
// per layer family.
var familyFixtures = []string{"layers_norm.json", "layers_reshape.json", "layers_activation.json", "layers_noise.json", "layers_preprocessing.json"}

// TestKerasFamilyParity checks the normalization, reshaping, noise,
// preprocessing and activation layers against Keras (see
// runLayerFixtures).
func TestKerasFamilyParity(t *testing.T) {
	for _, f := range familyFixtures {
		t.Run(f, func(t *testing.T) { runLayerFixtures(t, f) })
	}
}

// TestFamilyFixtureGradients checks the backward pass of every family
// fixture's model against central differences of its forward pass.
func TestFamilyFixtureGradients(t *testing.T) {
	for _, file := range familyFixtures {
		var fix struct {
			Cases []layerFixture `json:"cases"`
		}
		readKerasFixture(t, file, &fix)
		for i, c := range fix.Cases {
			t.Run(file+"/"+c.Name, func(t *testing.T) {
				m := kerasModel(t, c.Spec, c.Weights, WithThreads(1), withInputGrads())
				gradCheck(t, m, copyData(c.X), c.X[0].Shape[0], uint64(i), 1e-3, 2e-3, 2e-2)
			})
		}
	}
}
