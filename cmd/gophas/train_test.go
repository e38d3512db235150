package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gophas/gophas/protocol"
)

// TestTrainFlags checks that `gophas train` command-line mistakes exit with
// ExitUsage and a last stderr line naming the problem, and that a failing
// run exits with ExitError.
func TestTrainFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train"}, protocol.ExitUsage, "train: --model and --data are required"},
		{[]string{"train", "--model", "m.json"}, protocol.ExitUsage, "train: --model and --data are required"},
		{[]string{"train", "--modle", "m.json"}, protocol.ExitUsage, "train: flag provided but not defined: -modle"},
		{[]string{"train", "--model", "m.json", "--data", "d.csv", "extra"}, protocol.ExitUsage, `train: unexpected argument "extra"`},
		{[]string{"train", "--model", "m.json", "--data", "d.csv", "--epochs", "two"}, protocol.ExitUsage, `invalid value "two" for flag -epochs`},
		{[]string{"train", "--model", "m.json", "--data", "d.csv", "--validation-split", "x"}, protocol.ExitUsage, `invalid value "x" for flag -validation-split`},
		{[]string{"train", "--model", "/nonexistent/m.json", "--data", "d.csv"}, protocol.ExitError, "train: gokernel: Open: stat /nonexistent/m.json: no such file or directory"},
		{[]string{"train", "--model", "m.json", "--data", "d.csv", "--epochs", "-1"}, protocol.ExitError, "train: epochs -1 must not be negative"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.HasPrefix(last, protocol.ErrorPrefix) || !strings.Contains(last, tc.want) {
			t.Errorf("run(%q): got exit %d, last stderr line %q; want exit %d and a line starting %q containing %q", tc.args, code, last, tc.code, protocol.ErrorPrefix, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q): got stdout %q; want none", tc.args, stdout.String())
		}
	}
}

// TestHelp checks that -h prints a subcommand's flags and exits 0, with no
// error line.
func TestHelp(t *testing.T) {
	for _, cmd := range []string{"train", "driver", "inspect"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{cmd, "-h"}, strings.NewReader(""), &stdout, &stderr)
		if code != protocol.ExitOK || !strings.Contains(stderr.String(), "Usage of "+cmd) || strings.Contains(stderr.String(), protocol.ErrorPrefix) {
			t.Errorf("%s -h: got exit %d, stderr %q; want exit 0 and the usage only", cmd, code, stderr.String())
		}
	}
}
