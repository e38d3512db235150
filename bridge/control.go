package bridge

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
	"sync"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/ps"
)

// MaxControlLineBytes bounds one command line on the driver's stdin.
const MaxControlLineBytes = 1 << 20

// The driver's control channel. After the ready line, `gophas driver` reads
// one JSON object per line on stdin and answers each with exactly one JSON
// line on stdout, in order:
//
//	{"cmd":"load","model":DIR}      install DIR's weights (model.json and
//	                                model.safetensors), remember its spec;
//	                                when the server keeps an optimizer (for
//	                                gradient pushes) and DIR has
//	                                optimizer.safetensors, set that
//	                                optimizer's state from it (without the
//	                                file the server's state stays as it is)
//	                                -> {"ok":true,"version":N}
//	{"cmd":"save","dir":DIR}        write the current weights with that spec
//	                                as a model directory, with the server
//	                                optimizer's state as
//	                                optimizer.safetensors when there is one
//	                                (model.json then names that optimizer,
//	                                so the directory loads as a whole), and
//	                                no such file otherwise
//	                                -> {"ok":true,"version":N}
//	{"cmd":"epoch","epoch":E}       open epoch E (from 1, in order) before
//	                                its tasks start; synchronous rounds then
//	                                wait for every worker of the job to
//	                                register for E (ps.Params.OpenEpoch)
//	                                -> {"ok":true,"round":R,"version":N},
//	                                R the round of the epoch's first batch
//	{"cmd":"stats"}                 -> {"ok":true,"version":N,"mode":..,
//	                                "frequency":..,"round":N,"workers":[
//	                                {"worker":..,"applied":N,"refused":N,
//	                                "duplicate":N,"nonFinite":N,
//	                                "registers":N,"done":B}, ...]}
//	{"cmd":"forget","hashes":[..]}  drop those blobs from the model store
//	                                -> {"ok":true}
//
// Anything else, or a failure, is answered {"ok":false,"error":MESSAGE} and
// the driver goes on serving. End of input shuts the driver down.

// controlCommand is one line of the control channel.
type controlCommand struct {
	Cmd    string   `json:"cmd"`
	Model  string   `json:"model"`
	Dir    string   `json:"dir"`
	Hashes []string `json:"hashes"`
	Epoch  int      `json:"epoch"`
}

type controlRound struct {
	OK      bool   `json:"ok"`
	Round   uint64 `json:"round"`
	Version uint64 `json:"version"`
}

type controlError struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

type controlVersion struct {
	OK      bool   `json:"ok"`
	Version uint64 `json:"version"`
}

type controlOK struct {
	OK bool `json:"ok"`
}

type controlStats struct {
	OK        bool                `json:"ok"`
	Version   uint64              `json:"version"`
	Mode      string              `json:"mode"`
	Frequency string              `json:"frequency"`
	Round     uint64              `json:"round"`
	Workers   []controlWorkerStat `json:"workers"`
}

type controlWorkerStat struct {
	Worker    string `json:"worker"`
	Applied   uint64 `json:"applied"`
	Refused   uint64 `json:"refused"`
	Duplicate uint64 `json:"duplicate"`
	NonFinite uint64 `json:"nonFinite"`
	Registers uint64 `json:"registers"`
	Done      bool   `json:"done"`
}

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
		var answer any
		if tooLong {
			answer = controlError{Error: fmt.Sprintf("command line longer than %d bytes", MaxControlLineBytes)}
		} else {
			answer = c.run(line)
		}
		b, jerr := json.Marshal(answer)
		if jerr != nil {
			b, _ = json.Marshal(controlError{Error: "encoding the answer: " + jerr.Error()})
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
			if len(line)+len(frag) > MaxControlLineBytes+2 {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if !tooLong && len(line) > MaxControlLineBytes {
			tooLong, line = true, nil
		}
		return line, tooLong, err
	}
}

// run answers one command.
func (c *control) run(line []byte) any {
	var cmd controlCommand
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return controlError{Error: fmt.Sprintf("bad command %q: %v (want one JSON object per line, such as {\"cmd\":\"stats\"})", truncate(line, 200), err)}
	}
	if dec.More() {
		return controlError{Error: fmt.Sprintf("bad command %q: more than one JSON value on the line", truncate(line, 200))}
	}
	answer, err := c.do(cmd)
	if err != nil {
		c.log.Warn("gophas driver: command failed", "cmd", cmd.Cmd, "error", err)
		return controlError{Error: err.Error()}
	}
	return answer
}

func (c *control) do(cmd controlCommand) (any, error) {
	switch cmd.Cmd {
	case "load":
		if cmd.Model == "" {
			return nil, errors.New("load: field \"model\" (a model directory) is required")
		}
		m, err := gokernel.LoadModel(cmd.Model)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", cmd.Model, err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		v, err := c.params.SetWeights(m.Weights(), false)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", cmd.Model, err)
		}
		c.spec = m.Spec()
		if c.params.HasOptimizer() {
			restored, err := loadOptimizerState(c.params, cmd.Model)
			if err != nil {
				return nil, fmt.Errorf("load %s: weights installed (version %d) but the server optimizer's state was not: %w", cmd.Model, v, err)
			}
			if restored {
				c.log.Info("gophas driver: server optimizer state loaded", "model", cmd.Model)
			}
		}
		c.log.Info("gophas driver: weights loaded", "model", cmd.Model, "version", v)
		return controlVersion{OK: true, Version: v}, nil
	case "save":
		if cmd.Dir == "" {
			return nil, errors.New("save: field \"dir\" (the directory to write) is required")
		}
		c.mu.Lock()
		spec := c.spec
		c.mu.Unlock()
		if spec == nil {
			return nil, errors.New("save: no model loaded yet (send a load command first)")
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
					return nil, fmt.Errorf("save %s: %w", cmd.Dir, err)
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
			} else if spec, err = withOptimizer(spec, c.optimizer); err != nil {
				return nil, fmt.Errorf("save %s: %w", cmd.Dir, err)
			}
		}
		m, err := gokernel.NewModel(spec)
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", cmd.Dir, err)
		}
		if err := m.SetWeights(ws); err != nil {
			return nil, fmt.Errorf("save %s: the server's weights (version %d) do not fit the loaded spec: %w", cmd.Dir, v, err)
		}
		if err := saveModelDir(cmd.Dir, m); err != nil {
			return nil, fmt.Errorf("save %s: %w", cmd.Dir, err)
		}
		if state != nil {
			if err := saveOptimizerState(cmd.Dir, state); err != nil {
				return nil, fmt.Errorf("save %s: %w", cmd.Dir, err)
			}
		}
		return controlVersion{OK: true, Version: v}, nil
	case "stats":
		st := c.params.Stats()
		out := controlStats{OK: true, Version: st.Version, Mode: string(st.Mode), Frequency: string(st.Frequency), Round: st.Round,
			Workers: make([]controlWorkerStat, 0, len(st.Workers))}
		for _, w := range st.Workers {
			out.Workers = append(out.Workers, controlWorkerStat{Worker: w.Worker, Applied: w.Applied, Refused: w.Refused,
				Duplicate: w.Duplicate, NonFinite: w.NonFinite, Registers: w.Registers, Done: w.Done})
		}
		return out, nil
	case "epoch":
		round, err := c.params.OpenEpoch(cmd.Epoch)
		if err != nil {
			return nil, fmt.Errorf("epoch %d: %w", cmd.Epoch, err)
		}
		c.log.Info("gophas driver: epoch opened", "epoch", cmd.Epoch, "round", round)
		return controlRound{OK: true, Round: round, Version: c.params.Version()}, nil
	case "forget":
		n := c.store.Delete(cmd.Hashes...)
		c.log.Info("gophas driver: blobs forgotten", "asked", len(cmd.Hashes), "deleted", n)
		return controlOK{OK: true}, nil
	case "":
		return nil, errors.New("field \"cmd\" is required (load, save, epoch, stats or forget)")
	default:
		return nil, fmt.Errorf("unknown command %q (load, save, epoch, stats or forget)", cmd.Cmd)
	}
}

// saveModelDir writes m as a model directory (model.json and
// model.safetensors) without optimizer state: SaveModel would write a fresh
// optimizer's state, an iteration count alone, which is not the state
// training left.
func saveModelDir(dir string, m *gokernel.Model) error {
	if err := gokernel.SaveModel(dir, m); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, gokernel.OptimizerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
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

// withOptimizer returns spec with the optimizer of its compile config
// replaced by the serialization opt, the rest (loss and its arguments,
// metrics) unchanged.
func withOptimizer(spec *gokernel.Spec, opt []byte) (*gokernel.Spec, error) {
	b, err := spec.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var w struct {
		Model   json.RawMessage            `json:"model"`
		Compile map[string]json.RawMessage `json:"compile"`
	}
	if err := json.Unmarshal(b, &w); err != nil || w.Compile == nil {
		return nil, fmt.Errorf("the spec's compile config: %v", err)
	}
	w.Compile["optimizer"] = opt
	if b, err = json.Marshal(w); err != nil {
		return nil, err
	}
	return gokernel.ParseSpec(b)
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
