package scenario

import (
	"slices"
	"strings"
	"testing"
)

// receiver.impl and sender.impl: what can play each role, and the
// settings only the Go models honour, refused with file:line.
func TestImplValidation(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown receiver", "name: x\nreceiver:\n  impl: exim\n", `x.yaml:3: receiver.impl: must be go, courier or postfix, got "exim"`},
		{"postfix sender", "name: x\nsender:\n  impl: postfix\n", "x.yaml:3: sender.impl: postfix is not available as a sender yet (go or courier)"},
		{"unknown sender", "sender:\n  impl: qmail\n", `x.yaml:2: sender.impl: must be go or courier, got "qmail"`},
		{"rules with courier", "receiver:\n  impl: courier\n  rules:\n    - {file: -foo-default, maildirs: [/m]}\n", "x.yaml:4: receiver.rules: only receiver.impl go has extension rules"},
		{"filter with postfix", "receiver:\n  impl: postfix\n  filter: {mode: delay, delay: 1s}\n", "x.yaml:3: receiver.filter.mode: only receiver.impl go has filter modes"},
		{"mark with courier", "receiver: {impl: courier}\ndns:\n  blacklists:\n    - {zone: bl.example, policy: mark}\n", "x.yaml:4: dns.blacklists[0]: policy mark, txt and message are the Go receiver's"},
		{"maildir at the root", "receiver:\n  impl: courier\n  maildir: /Maildir\n", "x.yaml:3: receiver.maildir: a real courier delivers into the account's home"},
		{"compare without a real MTA", "compare_model: true\n", "x.yaml:1: compare_model: compares a real MTA with the Go model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestImplDefaultsAndModel(t *testing.T) {
	sc, err := Parse("x.yaml", []byte("name: real\ncompare_model: true\nreceiver: {impl: postfix}\nsender: {impl: courier}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.MTAs(); !slices.Equal(got, []string{"postfix", "courier"}) {
		t.Errorf("MTAs %v", got)
	}
	m := sc.Model()
	if m.Name != "real-model" || m.Receiver.Impl != ImplGo || m.Sender.Impl != ImplGo || m.CompareModel || m.Validate() != nil {
		t.Errorf("model %+v: %v", m, m.Validate())
	}
	if d := Default(); d.Receiver.Impl != ImplGo || d.Sender.Impl != ImplGo || len(d.MTAs()) != 0 {
		t.Errorf("defaults %q %q", d.Receiver.Impl, d.Sender.Impl)
	}
}
