package pipe

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// TestTrainWorkerGlobalStep: two workers train with a CosineDecay whose
// decay_steps is one epoch of global steps (2 workers × 4 batches), so the
// learning rate reaches 0 at the end of epoch 1 in the global count. The
// server counts 8 steps per epoch; the workers read the global step, so
// epoch 2 (steps 8 to 15) trains at rate 0 and leaves the weights exactly
// as epoch 1 left them. Had a worker counted its own 4 steps per epoch,
// epoch 2 would have trained at positive rates.
func TestTrainWorkerGlobalStep(t *testing.T) {
	spec, err := gokernel.ParseSpec([]byte(fixture.ClassifierSpec))
	if err != nil {
		t.Fatal(err)
	}
	spec, err = spec.Compile(gokernel.CompileOptions{Optimizer: `{"class_name":"SGD","config":{"learning_rate":{"class_name":"CosineDecay","config":{"initial_learning_rate":0.5,"decay_steps":8}}}}`})
	if err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(spec, gokernel.WithSeed(3))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := gokernel.SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	shards := make([][]arrow.RecordBatch, 2)
	for i := range shards {
		rec := labeledRecord(mem, 40, false, uint64(i+1), -1)
		defer rec.Release()
		shards[i] = []arrow.RecordBatch{rec}
	}
	for _, tt := range []struct {
		mode ps.Mode
		freq ps.Frequency
	}{
		{ps.Asynchronous, ps.Epoch}, {ps.Asynchronous, ps.Batch}, {ps.Synchronous, ps.Epoch}, {ps.Synchronous, ps.Batch},
	} {
		t.Run(fmt.Sprintf("%s/%s", tt.mode, tt.freq), func(t *testing.T) {
			p, addr := psServer(t, m.Weights(), ps.WithMode(tt.mode), ps.WithFrequency(tt.freq), ps.WithWorkers(2))
			states := make([]string, 2)
			var after [][]gokernel.NamedTensor
			for epoch := 1; epoch <= 2; epoch++ {
				round := openEpoch(t, p, epoch)
				errs := make([]error, 2)
				res := make([]trainResult, 2)
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						h := protocol.Header{Mode: protocol.ModeTrain, Model: dir, Driver: addr, Token: trainToken, Worker: fmt.Sprint("partition-", i),
							Partition: i, Epoch: epoch, Epochs: 2, Round: round, OptimizerState: states[i], Seed: 5, BatchSize: 10, Threads: 1}
						res[i], errs[i] = runTask(h, labeledSchema(shards[i]), shards[i])
					})
				}
				wg.Wait()
				for i := range 2 {
					if errs[i] != nil {
						t.Fatalf("epoch %d worker %d: %v\n%s", epoch, i, errs[i], res[i].stderr)
					}
					states[i] = res[i].state
				}
				if got, want := p.Stats().Steps, uint64(8*epoch); got != want {
					t.Errorf("after epoch %d the server counts %d global steps; want %d", epoch, got, want)
				}
				ws, _ := p.Weights()
				after = append(after, ws)
			}
			for i := range after[0] {
				if !slices.Equal(after[0][i].Data, after[1][i].Data) {
					t.Errorf("weight %s changed in epoch 2, whose global steps 8-15 are past decay_steps 8 (rate 0): the workers did not use the global step", after[0][i].Name)
				}
				if slices.Equal(after[0][i].Data, m.Weights()[i].Data) {
					t.Errorf("weight %s did not change in epoch 1", after[0][i].Name)
				}
			}
		})
	}
}

func labeledSchema(recs []arrow.RecordBatch) *arrow.Schema { return recs[0].Schema() }
