package driver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// The control channel: after the ready line, `gophas driver` reads one
// protocol.Command per line on stdin and answers each with exactly one
// protocol.Answer line on stdout, in order (the commands and their answers
// are defined in package protocol). End of input shuts the driver down.

func fail(msg string) protocol.Answer { return protocol.Answer{Error: msg} }

func withVersion(v uint64) protocol.Answer { return protocol.Answer{OK: true, Version: &v} }

// control answers the commands of the driver's stdin.
type control struct {
	params *ps.Params
	store  *ps.Store
	log    *slog.Logger
	// optimizer is the config of the server's optimizer (DriverConfig's),
	// nil when it has none.
	optimizer []byte

	mu   sync.Mutex
	spec *gokernel.Spec // of the last load
}

// serve answers every line of r on w until r ends; it returns the error
// that ended r (nil at EOF) or the first failed write.
func (c *control) serve(r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, err := readControlLine(br)
		if err != nil && len(line) == 0 && !tooLong {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var answer protocol.Answer
		if tooLong {
			answer = fail(fmt.Sprintf("command line longer than %d bytes", protocol.MaxControlLineBytes))
		} else {
			answer = c.run(line)
		}
		b, jerr := json.Marshal(answer)
		if jerr != nil {
			b, _ = json.Marshal(fail("encoding the answer: " + jerr.Error()))
		}
		if _, werr := fmt.Fprintf(w, "%s\n", b); werr != nil {
			return fmt.Errorf("writing an answer: %w", werr)
		}
		if f, ok := w.(*os.File); ok {
			_ = f.Sync()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// readControlLine reads one line without its end ("\n" or "\r\n"). A line
// longer than MaxControlLineBytes is read to its end and dropped.
func readControlLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > protocol.MaxControlLineBytes+2 {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if !tooLong && len(line) > protocol.MaxControlLineBytes {
			tooLong, line = true, nil
		}
		return line, tooLong, err
	}
}

// run answers one command.
func (c *control) run(line []byte) protocol.Answer {
	var cmd protocol.Command
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return fail(fmt.Sprintf("bad command %q: %v (want one JSON object per line, such as {\"cmd\":\"stats\"})", truncate(line, 200), err))
	}
	if dec.More() {
		return fail(fmt.Sprintf("bad command %q: more than one JSON value on the line", truncate(line, 200)))
	}
	answer, err := c.do(cmd)
	if err != nil {
		c.log.Warn("gophas driver: command failed", "cmd", cmd.Cmd, "error", err)
		return fail(err.Error())
	}
	return answer
}

func (c *control) do(cmd protocol.Command) (protocol.Answer, error) {
	none := protocol.Answer{}
	switch cmd.Cmd {
	case protocol.CmdLoad:
		if cmd.Model == "" {
			return none, errors.New("load: field \"model\" (a model directory) is required")
		}
		m, err := gokernel.LoadModel(cmd.Model)
		if err != nil {
			return none, fmt.Errorf("load %s: %w", cmd.Model, err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		v, err := c.params.SetWeightsRoles(m.Weights(), m.Roles(), false)
		if err != nil {
			return none, fmt.Errorf("load %s: %w", cmd.Model, err)
		}
		c.spec = m.Spec()
		if c.params.HasOptimizer() {
			restored, err := loadOptimizerState(c.params, cmd.Model)
			if err != nil {
				return none, fmt.Errorf("load %s: weights installed (version %d) but the server optimizer's state was not: %w", cmd.Model, v, err)
			}
			if restored {
				c.log.Info("gophas driver: server optimizer state loaded", "model", cmd.Model)
			}
		}
		c.log.Info("gophas driver: weights loaded", "model", cmd.Model, "version", v)
		return withVersion(v), nil
	case protocol.CmdSave:
		if cmd.Dir == "" {
			return none, errors.New("save: field \"dir\" (the directory to write) is required")
		}
		c.mu.Lock()
		spec := c.spec
		c.mu.Unlock()
		if spec == nil {
			return none, errors.New("save: no model loaded yet (send a load command first)")
		}
		ws, v := c.params.Weights()
		var err error
		var state []ps.NamedTensor
		if c.params.HasOptimizer() {
			// The state that goes with these weights: retry if a gradient
			// push came between the two reads.
			for try := 0; ; try++ {
				st, sv, err := c.params.OptimizerState()
				if err != nil {
					return none, fmt.Errorf("save %s: %w", cmd.Dir, err)
				}
				if sv == v || try == 10 {
					state = st
					break
				}
				ws, v = c.params.Weights()
			}
		}
		if state != nil {
			// The state is the server optimizer's: the saved spec names it,
			// so that the directory loads as a whole.
			if !spec.HasCompile() {
				c.log.Warn("gophas driver: the loaded spec has no compile config; the server optimizer's state is not saved", "dir", cmd.Dir)
				state = nil
			} else if spec, err = spec.Compile(gokernel.CompileOptions{Optimizer: string(c.optimizer)}); err != nil {
				return none, fmt.Errorf("save %s: %w", cmd.Dir, err)
			}
		}
		m, err := gokernel.NewModel(spec)
		if err != nil {
			return none, fmt.Errorf("save %s: %w", cmd.Dir, err)
		}
		if err := m.SetWeights(ws); err != nil {
			return none, fmt.Errorf("save %s: the server's weights (version %d) do not fit the loaded spec: %w", cmd.Dir, v, err)
		}
		if err := gokernel.SaveWeights(cmd.Dir, m); err != nil {
			return none, fmt.Errorf("save %s: %w", cmd.Dir, err)
		}
		if state != nil {
			if err := saveOptimizerState(cmd.Dir, state); err != nil {
				return none, fmt.Errorf("save %s: %w", cmd.Dir, err)
			}
		}
		return withVersion(v), nil
	case protocol.CmdStats:
		st := c.params.Stats()
		return protocol.Answer{OK: true, Stats: &st}, nil
	case protocol.CmdEpoch:
		round, err := c.params.OpenEpoch(cmd.Epoch)
		if err != nil {
			return none, fmt.Errorf("epoch %d: %w", cmd.Epoch, err)
		}
		c.log.Info("gophas driver: epoch opened", "epoch", cmd.Epoch, "round", round)
		a := withVersion(c.params.Version())
		a.Round = &round
		return a, nil
	case protocol.CmdForget:
		n := c.store.Delete(cmd.Hashes...)
		c.log.Info("gophas driver: blobs forgotten", "asked", len(cmd.Hashes), "deleted", n)
		return protocol.Answer{OK: true}, nil
	case protocol.CmdExport:
		if cmd.Dir == "" {
			return none, errors.New("export: field \"dir\" (the directory to write) is required")
		}
		for _, h := range cmd.Hashes {
			_, data, ok := c.store.Get(h)
			if !ok {
				return none, fmt.Errorf("export: blob %s is not in the model store", h)
			}
			if err := writeAtomic(filepath.Join(cmd.Dir, h), data); err != nil {
				return none, fmt.Errorf("export %s: %w", h, err)
			}
		}
		return protocol.Answer{OK: true}, nil
	case protocol.CmdImport:
		hashes := []string{}
		for _, f := range cmd.Files {
			data, err := os.ReadFile(f)
			if err != nil {
				return none, fmt.Errorf("import: %w", err)
			}
			h, err := c.store.Put("optimizer", data)
			if err != nil {
				return none, fmt.Errorf("import %s: %w", f, err)
			}
			hashes = append(hashes, h)
		}
		return protocol.Answer{OK: true, Hashes: hashes}, nil
	case protocol.CmdSteps:
		c.params.SetSteps(cmd.Steps)
		c.log.Info("gophas driver: global step set", "steps", cmd.Steps)
		return protocol.Answer{OK: true}, nil
	case "":
		return none, fmt.Errorf("field \"cmd\" is required (%s)", strings.Join(protocol.Commands, ", "))
	default:
		return none, fmt.Errorf("unknown command %q (%s)", cmd.Cmd, strings.Join(protocol.Commands, ", "))
	}
}

// writeAtomic writes data as path through a temporary file in its directory
// and a rename: a reader sees the whole file or none.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// saveOptimizerState writes state (the server optimizer's) as dir's
// optimizer.safetensors, through a temporary file and a rename.
func saveOptimizerState(dir string, state []ps.NamedTensor) error {
	f, err := os.CreateTemp(dir, gokernel.OptimizerFile+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := gokernel.WriteSafetensors(f, state); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", gokernel.OptimizerFile, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, gokernel.OptimizerFile))
}

// loadOptimizerState sets the server optimizer's state from dir's
// optimizer.safetensors; restored is false when dir has none.
func loadOptimizerState(p *ps.Params, dir string) (restored bool, err error) {
	f, err := os.Open(filepath.Join(dir, gokernel.OptimizerFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	state, err := gokernel.ReadSafetensors(f)
	if err != nil {
		return false, fmt.Errorf("%s: %w", gokernel.OptimizerFile, err)
	}
	if _, err := p.SetOptimizerState(state); err != nil {
		return false, fmt.Errorf("%s: %w", gokernel.OptimizerFile, err)
	}
	return true, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
