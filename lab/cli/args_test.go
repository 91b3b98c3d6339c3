package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// A typo on the command line is bad input, exit 2, naming the command; it
// is never mistaken for a run that lost mail (exit 1).
func TestBadCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--repaet", "2"}, "lab run: unknown flag: --repaet"},
		{[]string{"run", "--repeat", "x"}, "lab run: invalid argument \"x\" for \"--repeat\""},
		{[]string{"run", "--repeat", "0", "scenarios/fast.yaml"}, "--repeat 0: must be at least 1"},
		{[]string{"run", "a.yaml", "b.yaml"}, "lab run: accepts at most 1 arg(s), received 2"},
		{[]string{"nosuch"}, "unknown command \"nosuch\""},
		{[]string{"clean", "extra"}, "lab clean: unknown command \"extra\""},
		{[]string{"compose", "--wrte"}, "lab compose: unknown flag: --wrte"},
	} {
		root := Root()
		root.SetArgs(c.args)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitBadInput || !strings.Contains(ee.Msg, c.want) {
			t.Errorf("lab %s: %v, want exit %d saying %q", strings.Join(c.args, " "), err, ExitBadInput, c.want)
		}
	}
}
