package cli

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// What `lab images` builds: every MTA, those --mta names, none, or what a
// scenario runs; a bad flag or scenario is bad input (exit 2), named.
func TestMTAsToBuild(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fast := filepath.Join("..", "..", "scenarios", "fast.yaml")
	real := filepath.Join("..", "..", "scenarios", "courier-1999-real.yaml")
	mixed := write("mixed.yaml", "receiver: {impl: exim}\nsender: {impl: postfix}\n")
	bad := write("bad.yaml", "name: bad\nreceiver:\n  impl: qmail\n")
	for _, c := range []struct {
		name  string
		only  []string
		path  string
		want  []string
		error string
	}{
		{"every MTA", nil, "", []string{"courier", "exim", "postfix"}, ""},
		{"none", []string{"none"}, "", nil, ""},
		{"named", []string{"postfix"}, "", []string{"postfix"}, ""},
		{"unknown", []string{"qmail"}, "", nil, `--mta "qmail": want courier, postfix, exim or none`},
		{"both flags", []string{"postfix"}, fast, nil, "give --mta or --scenario, not both"},
		{"fast scenario", nil, fast, nil, ""},
		{"real scenario", nil, real, []string{"courier"}, ""},
		{"two MTAs", nil, mixed, []string{"exim", "postfix"}, ""},
		{"bad scenario", nil, bad, nil, bad + ":3: receiver.impl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := mtasToBuild(c.only, c.path)
			if c.error != "" {
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != ExitBadInput || !strings.Contains(ee.Msg, c.error) {
					t.Fatalf("error %v, want exit %d saying %q", err, ExitBadInput, c.error)
				}
				return
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}
