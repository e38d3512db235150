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
//	                                model.safetensors), remember its spec
//	                                -> {"ok":true,"version":N}
//	{"cmd":"save","dir":DIR}        write the current weights with that spec
//	                                as a model directory
//	                                -> {"ok":true,"version":N}
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
	case "forget":
		n := c.store.Delete(cmd.Hashes...)
		c.log.Info("gophas driver: blobs forgotten", "asked", len(cmd.Hashes), "deleted", n)
		return controlOK{OK: true}, nil
	case "":
		return nil, errors.New("field \"cmd\" is required (load, save, stats or forget)")
	default:
		return nil, fmt.Errorf("unknown command %q (load, save, stats or forget)", cmd.Cmd)
	}
}

// saveModelDir writes m as a model directory (model.json and
// model.safetensors) without optimizer state: SaveModel would write a fresh
// optimizer's state, an iteration count alone, and a model loaded with it
// cannot train ("state built for 0 parameters").
func saveModelDir(dir string, m *gokernel.Model) error {
	if err := gokernel.SaveModel(dir, m); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, gokernel.OptimizerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
