package stack

import (
	"strings"
	"testing"
)

// debootstrap's own lines (from a bookworm minbase run) become a few
// progress reports: one per stage, packages counted once each.
func TestWatchDebootstrap(t *testing.T) {
	out := strings.Join([]string{
		"I: Retrieving InRelease ",
		"I: Checking Release signature",
		"I: Retrieving Packages ",
		"I: Validating Packages ",
		"I: Resolving dependencies of required packages...",
		"I: Retrieving adduser 3.134",
		"I: Validating adduser 3.134",
		"I: Retrieving apt 2.6.1",
		"I: Validating apt 2.6.1",
		"I: Extracting adduser...",
		"I: Extracting apt...",
		"I: Installing core packages...",
		"I: Unpacking required packages...",
		"I: Unpacking adduser...",
		"I: Configuring required packages...",
		"I: Configuring adduser...",
		"W: something odd",
		"I: Base system installed successfully.",
	}, "\n")
	var got []string
	tail := watchDebootstrap(strings.NewReader(out), func(p debootstrapProgress) {
		got = append(got, p.Stage+" "+string(rune('0'+p.Count)))
	})
	want := []string{"downloading 4", "extracting 2", "installing 0", "unpacking 2", "configuring 2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("reports %q, want %q", got, want)
	}
	if len(tail) == 0 || tail[len(tail)-1] != "I: Base system installed successfully." {
		t.Errorf("tail %q", tail)
	}
}

// The base image's tag depends on what debootstrap installs, not on the
// order the packages are listed in.
func TestBaseRefKey(t *testing.T) {
	a := MTA{Name: "courier", Packages: []string{"courier-mta", "netbase"}}
	b := MTA{Name: "courier", Packages: []string{"netbase", "courier-mta"}}
	c := MTA{Name: "courier", Packages: []string{"courier-mta"}}
	if a.BaseRef() != b.BaseRef() || a.BaseRef() == c.BaseRef() || !strings.HasPrefix(a.BaseRef(), "smtplab/courier-base:") {
		t.Errorf("%s %s %s", a.BaseRef(), b.BaseRef(), c.BaseRef())
	}
}
