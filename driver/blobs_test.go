package driver

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// TestControlBlobsAndSteps: export writes store blobs as files named by
// their hash, import puts files back (same hashes), steps sets the global
// step; missing blobs and files are errors naming them.
func TestControlBlobsAndSteps(t *testing.T) {
	params, err := ps.NewParams()
	if err != nil {
		t.Fatal(err)
	}
	store := ps.NewStore()
	c := &control{params: params, store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h1, err := store.Put("optimizer", []byte("state one"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := store.Put("optimizer", []byte("state two"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := c.do(protocol.Command{Cmd: protocol.CmdExport, Hashes: []string{h1, h2}, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, h2)); err != nil || string(b) != "state two" {
		t.Fatalf("exported %s: %q, %v", h2, b, err)
	}
	store.Delete(h1, h2)
	a, err := c.do(protocol.Command{Cmd: protocol.CmdImport, Files: []string{filepath.Join(dir, h1), filepath.Join(dir, h2)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Hashes) != 2 || a.Hashes[0] != h1 || a.Hashes[1] != h2 {
		t.Fatalf("import answered %v; want [%s %s]", a.Hashes, h1, h2)
	}
	if _, data, ok := store.Get(h1); !ok || string(data) != "state one" {
		t.Fatalf("imported blob %s: %q, %v", h1, data, ok)
	}
	if _, err := c.do(protocol.Command{Cmd: protocol.CmdExport, Hashes: []string{"abc"}, Dir: dir}); err == nil || !strings.Contains(err.Error(), "blob abc is not in the model store") {
		t.Errorf("export of a missing blob: %v", err)
	}
	if _, err := c.do(protocol.Command{Cmd: protocol.CmdImport, Files: []string{filepath.Join(dir, "nope")}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("import of a missing file: %v", err)
	}
	if _, err := c.do(protocol.Command{Cmd: protocol.CmdSteps, Steps: 42}); err != nil {
		t.Fatal(err)
	}
	if got := params.Stats().Steps; got != 42 {
		t.Errorf("steps %d after the steps command; want 42", got)
	}
}
