package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// TestDriverControl drives a real `gophas driver` process through its
// stdin: every command line gets exactly one answer line on stdout.
func TestDriverControl(t *testing.T) {
	bin := gophasBinary(t)
	cmd := exec.Command(bin, "driver", "--host", "127.0.0.1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	br := bufio.NewReader(stdout)
	rd := readReady(t, br)
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	send := func(line string) map[string]any {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatalf("writing %q: %v", line, err)
		}
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("%q: stdout closed; stderr:\n%s", line, stderr.String())
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatalf("%q: answer %q is not JSON: %v", line, got, err)
			}
			return m
		case <-time.After(20 * time.Second):
			t.Fatalf("%q: no answer within 20s", line)
		}
		return nil
	}
	wantError := func(line, want string) {
		t.Helper()
		if got := send(line); got["ok"] != false || !strings.Contains(got["error"].(string), want) {
			t.Errorf("%s: got %v; want ok false and an error containing %q", line, got, want)
		}
	}

	stats := func() map[string]any {
		t.Helper()
		got := send(`{"cmd":"stats"}`)
		st, ok := got["stats"].(map[string]any)
		if got["ok"] != true || !ok {
			t.Fatalf("stats: got %v; want ok and a stats object", got)
		}
		return st
	}
	if got := stats(); got["version"] != 0.0 || got["mode"] != "asynchronous" || got["frequency"] != "epoch" ||
		got["round"] != 0.0 || got["epoch"] != 0.0 || len(got["workers"].([]any)) != 0 {
		t.Errorf("stats before load: got %v; want version 0, asynchronous, epoch, no workers", got)
	}
	out := filepath.Join(t.TempDir(), "saved")
	wantError(`{"cmd":"save","dir":"`+out+`"}`, "save: no model loaded yet")
	wantError(`{"cmd":"load","model":"/nonexistent"}`, "load /nonexistent: gokernel: LoadModel: stat /nonexistent: no such file or directory")
	wantError(`{"cmd":"load"}`, `load: field "model"`)
	wantError(`{"cmd":"fly"}`, `unknown command "fly"`)
	wantError(`{"model":"x"}`, `field "cmd" is required`)
	wantError(`{"cmd":"stats","extra":1}`, `unknown field "extra"`)
	wantError(`stats`, `bad command "stats"`)
	wantError(``, `bad command ""`)
	wantError(`{"cmd":"stats"} {"cmd":"stats"}`, "more than one JSON value")
	wantError(`{"cmd":"forget","hashes":"`+strings.Repeat("x", protocol.MaxControlLineBytes)+`"}`, "command line longer than 1048576 bytes")

	dir, m := modeltest.Save(t, fixture.ClassifierSpec, "categorical_crossentropy", "accuracy")
	if got := send(`{"cmd":"load","model":"` + dir + `"}`); got["ok"] != true || got["version"] != 1.0 {
		t.Fatalf("load: got %v; want ok, version 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := driverClient(t, rd)
	if _, err := c.Register(ctx, "partition-0", 0); err != nil {
		t.Fatal(err)
	}
	ws := m.Weights()
	shapes := make([]ps.TensorInfo, len(ws))
	ones := make([][]float32, len(ws))
	for i, w := range ws {
		shapes[i] = ps.TensorInfo{Name: w.Name, Shape: w.Shape}
		ones[i] = make([]float32, len(w.Data))
		for j := range ones[i] {
			ones[i][j] = 1
		}
	}
	if _, err := c.Push(ctx, 1, ps.Delta, shapes, ones); err != nil {
		t.Fatal(err)
	}
	got := stats()
	workers, _ := got["workers"].([]any)
	if got["version"] != 2.0 || len(workers) != 1 {
		t.Fatalf("stats after a push: got %v; want version 2, one worker", got)
	}
	want := map[string]any{"worker": "partition-0", "applied": 1.0, "refused": 0.0, "duplicate": 0.0, "nonFinite": 0.0, "registers": 1.0, "done": false, "epoch": 0.0}
	for k, v := range want {
		if w := workers[0].(map[string]any); w[k] != v {
			t.Errorf("stats worker %s = %v; want %v", k, w[k], v)
		}
	}

	if got := send(`{"cmd":"save","dir":"` + out + `"}`); got["ok"] != true || got["version"] != 2.0 {
		t.Fatalf("save: got %v; want ok, version 2", got)
	}
	saved, err := gokernel.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range saved.Weights() {
		for j, v := range w.Data {
			if v != ws[i].Data[j]+1 {
				t.Fatalf("saved weight %s[%d] = %v; want %v + 1", w.Name, j, v, ws[i].Data[j])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, gokernel.OptimizerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("saved dir has %s (%v); want the weights alone", gokernel.OptimizerFile, err)
	}
	if saved.Spec().Loss() != "categorical_crossentropy" {
		t.Errorf("saved spec loss %q; want the loaded spec's", saved.Spec().Loss())
	}

	hash, err := c.PutModel(ctx, "optimizer", []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	if got := send(`{"cmd":"forget","hashes":["` + hash + `","` + strings.Repeat("0", 64) + `"]}`); got["ok"] != true || len(got) != 1 {
		t.Errorf("forget: got %v; want {ok: true}", got)
	}
	c2, err := ps.Dial(rd.Address, rd.Token, ps.WithCacheDir(t.TempDir()), ps.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.FetchModel(ctx, hash); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("fetching a forgotten blob: %v; want NotFound", err)
	}

	stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("driver exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("driver still running 15s after its stdin closed")
	}
	for line := range lines {
		t.Errorf("stdout after the last answer: %q", line)
	}
}
