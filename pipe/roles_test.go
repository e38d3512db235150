package pipe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/driver"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// frozenBNModelDir writes fixture.FrozenBNSpec (a frozen Dense, a
// BatchNormalization, a trainable head) with seed-initialized weights as a
// model dir, the frozen kernel's first value set to -0 (which adding a zero
// delta would turn into +0); it returns the dir, the weights and their
// roles.
func frozenBNModelDir(t testing.TB, seed int64) (string, []gokernel.NamedTensor, []ps.Role) {
	t.Helper()
	spec, err := gokernel.ParseSpec([]byte(fixture.FrozenBNSpec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(spec, gokernel.WithSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	ws := m.Weights()
	ws[0].Data[0] = float32(math.Copysign(0, -1))
	if err := m.SetWeights(ws); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := gokernel.SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, m.Weights(), m.Roles()
}

// trainEpoch runs epoch 1 of the given partitions' shards as workers of
// one fit on p (at addr), all at once, and fails the test on an error.
func trainEpoch(t *testing.T, p *ps.Params, addr, dir string, shards map[int][]arrow.RecordBatch) {
	t.Helper()
	round := openEpoch(t, p, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for part, recs := range shards {
		wg.Go(func() {
			h := protocol.Header{Mode: protocol.ModeTrain, Model: dir, Driver: addr, Token: trainToken, Worker: fmt.Sprint("partition-", part),
				Partition: part, Epoch: 1, Epochs: 1, Round: round, Seed: 5, Threads: 1, BatchSize: 32}
			if res, err := runTask(h, vectorSchema, recs); err != nil {
				mu.Lock()
				defer mu.Unlock()
				t.Errorf("partition %d: %v\n%s", part, err, res.stderr)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// alone trains partition part's shard for one epoch as the only worker,
// from weights ws, and returns the weights it leaves: the values that
// worker pushes when its epoch starts from ws in a fit of several.
func alone(t *testing.T, dir string, ws []gokernel.NamedTensor, roles []ps.Role, part int, recs []arrow.RecordBatch) []gokernel.NamedTensor {
	t.Helper()
	p, addr := psServerRoles(t, ws, roles, ps.WithMode(ps.Synchronous), ps.WithWorkers(1))
	trainEpoch(t, p, addr, dir, map[int][]arrow.RecordBatch{part: recs})
	got, _ := p.Weights()
	return got
}

// checkMoving compares the moving statistics of got with want(i, j) for
// tensor i, value j.
func checkMoving(t *testing.T, what string, got []gokernel.NamedTensor, roles []ps.Role, want func(i, j int) float64) {
	t.Helper()
	for i, r := range roles {
		if r != ps.Moving {
			continue
		}
		for j, v := range got[i].Data {
			if w := want(i, j); math.Abs(float64(v)-w) > 1e-5*(1+math.Abs(w)) {
				t.Errorf("%s: %s[%d] = %v; want %v", what, got[i].Name, j, v, w)
			}
		}
	}
}

// TestTrainRolesThroughTheServer fits a model with a frozen Dense, a
// BatchNormalization and a trainable head with two workers through the
// worker pipe and a real parameter server:
//   - the frozen layer's weights stay bit-identical (its -0 too) in every
//     mode and frequency, and its moving statistics stay finite with a
//     positive variance;
//   - synchronous: the moving statistics are the mean of the values each
//     worker reaches alone (a sum of the deltas gives the sum of the means,
//     and a variance of v_a + v_b - 1);
//   - asynchronous, pushing every epoch without scaling the deltas: each
//     push moves the statistics half way to the worker's values, so two
//     workers that pulled the same values leave their mean, and here, the
//     second pulling after the first's push, mid + (v_b' - mid)/2.
func TestTrainRolesThroughTheServer(t *testing.T) {
	mem := memory.NewGoAllocator()
	shards := map[int][]arrow.RecordBatch{0: blobRecords(mem, 300, 100, 1), 1: blobRecords(mem, 300, 100, 2)}
	for _, s := range shards {
		defer release(s)
	}
	dir, init, roles := frozenBNModelDir(t, 1)
	if fmt.Sprint(roles) != "[frozen frozen trainable trainable moving moving trainable trainable]" {
		t.Fatalf("roles %v; want the Dense frozen, the statistics moving", roles)
	}
	frozenSame := func(what string, got []gokernel.NamedTensor) {
		t.Helper()
		for i, r := range roles {
			for j, v := range got[i].Data {
				if r == ps.Frozen && math.Float32bits(v) != math.Float32bits(init[i].Data[j]) {
					t.Errorf("%s: frozen %s[%d] = %v (bits %08x); want %v (bits %08x)", what, got[i].Name, j, v, math.Float32bits(v), init[i].Data[j], math.Float32bits(init[i].Data[j]))
				}
				if r == ps.Moving && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || (got[i].Name == "bn/moving_variance" && v <= 0)) {
					t.Errorf("%s: %s[%d] = %v; want finite, a variance positive", what, got[i].Name, j, v)
				}
			}
		}
	}
	va, vb := alone(t, dir, init, roles, 0, shards[0]), alone(t, dir, init, roles, 1, shards[1])
	frozenSame("worker 0 alone", va)
	for _, i := range []int{4, 5} {
		if slicesClose(va[i].Data, init[i].Data) || slicesClose(va[i].Data, vb[i].Data) {
			t.Fatalf("%s: the workers alone reach %v and %v from %v; want values that tell a mean from a sum", init[i].Name, va[i].Data, vb[i].Data, init[i].Data)
		}
	}

	t.Run("synchronous/epoch", func(t *testing.T) {
		p, addr := psServerRoles(t, init, roles, ps.WithMode(ps.Synchronous), ps.WithFrequency(ps.Epoch), ps.WithWorkers(2))
		trainEpoch(t, p, addr, dir, shards)
		got, _ := p.Weights()
		frozenSame("synchronous", got)
		checkMoving(t, "synchronous", got, roles, func(i, j int) float64 { return (float64(va[i].Data[j]) + float64(vb[i].Data[j])) / 2 })
	})
	t.Run("asynchronous/epoch", func(t *testing.T) {
		p, addr := psServerRoles(t, init, roles, ps.WithMode(ps.Asynchronous), ps.WithFrequency(ps.Epoch), ps.WithWorkers(2))
		round := openEpoch(t, p, 1)
		for part := range 2 { // one after the other: the second pulls the first's push
			h := protocol.Header{Mode: protocol.ModeTrain, Model: dir, Driver: addr, Token: trainToken, Worker: fmt.Sprint("partition-", part),
				Partition: part, Epoch: 1, Epochs: 1, Round: round, Seed: 5, Threads: 1, BatchSize: 32}
			mid, _ := p.Weights()
			if res, err := runTask(h, vectorSchema, shards[part]); err != nil {
				t.Fatalf("partition %d: %v\n%s", part, err, res.stderr)
			}
			got, _ := p.Weights()
			frozenSame(fmt.Sprint("asynchronous after worker ", part), got)
			v := va
			if part == 1 {
				v = alone(t, dir, mid, roles, 1, shards[1])
			}
			checkMoving(t, fmt.Sprint("asynchronous after worker ", part), got, roles, func(i, j int) float64 {
				return float64(mid[i].Data[j]) + (float64(v[i].Data[j])-float64(mid[i].Data[j]))/2
			})
		}
	})
	for _, tt := range []struct {
		mode ps.Mode
		freq ps.Frequency
	}{{ps.Synchronous, ps.Batch}, {ps.Asynchronous, ps.Batch}, {ps.Hogwild, ps.Batch}, {ps.Hogwild, ps.Epoch}} {
		t.Run(fmt.Sprintf("%s/%s", tt.mode, tt.freq), func(t *testing.T) {
			p, addr := psServerRoles(t, init, roles, ps.WithMode(tt.mode), ps.WithFrequency(tt.freq), ps.WithWorkers(2))
			trainEpoch(t, p, addr, dir, shards)
			got, _ := p.Weights()
			frozenSame(string(tt.mode), got)
			if st := p.Stats(); st.Workers[0].Applied == 0 || st.Workers[0].Refused != 0 {
				t.Errorf("stats %+v; want pushes applied, none refused", st)
			}
		})
	}
}

// slicesClose reports whether a and b agree within 1e-6.
func slicesClose(a, b []float32) bool {
	for j := range a {
		if math.Abs(float64(a[j]-b[j])) > 1e-6 {
			return false
		}
	}
	return true
}

// TestTrainRolesThroughDriver: the driver loads a model with its roles
// (the workers push no frozen tensor, and the server takes their pushes),
// and the model it saves after the fit keeps the frozen weights bit for
// bit.
func TestTrainRolesThroughDriver(t *testing.T) {
	mem := memory.NewGoAllocator()
	shards := map[int][]arrow.RecordBatch{0: blobRecords(mem, 300, 100, 1), 1: blobRecords(mem, 300, 100, 2)}
	for _, s := range shards {
		defer release(s)
	}
	dir, init, roles := frozenBNModelDir(t, 1)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- driver.Run(context.Background(), driver.Config{Host: "127.0.0.1", Mode: "asynchronous", Frequency: "batch", Workers: 2}, inR, outW, io.Discard)
	}()
	br := bufio.NewReader(outR)
	rd := readReady(t, br)
	command := func(line string) map[string]any {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
		answer, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(answer), &m); err != nil || m["ok"] != true {
			t.Fatalf("%s: answer %q (%v); want ok", line, answer, err)
		}
		return m
	}
	command(`{"cmd":"load","model":"` + dir + `"}`)
	round := uint64(command(`{"cmd":"epoch","epoch":1}`)["round"].(float64))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for part, recs := range shards {
		wg.Go(func() {
			h := protocol.Header{Mode: protocol.ModeTrain, Model: dir, Driver: rd.Address, Token: rd.Token, Worker: fmt.Sprint("partition-", part),
				Partition: part, Epoch: 1, Epochs: 1, Round: round, BatchSize: 32}
			res, err := runTask(h, vectorSchema, recs)
			if err != nil {
				errs[part] = fmt.Errorf("partition %d: %w\n%s", part, err, res.stderr)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "trained")
	command(`{"cmd":"save","dir":"` + out + `"}`)
	inW.Close()
	if err := <-done; err != nil {
		t.Errorf("driver: %v", err)
	}
	m, err := gokernel.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range m.Weights() {
		changed := false
		for j, v := range w.Data {
			changed = changed || math.Float32bits(v) != math.Float32bits(init[i].Data[j])
		}
		if changed != (roles[i] != ps.Frozen) {
			t.Errorf("saved %s (%v): changed %v; want changed unless frozen, and a frozen one bit-identical", w.Name, roles[i], changed)
		}
	}
}
