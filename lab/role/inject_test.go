package role

import (
	"strings"
	"testing"
)

// A POST /inject body is outside input: what DecodeInjection accepts has
// a valid pace, and what it refuses it names.
func TestDecodeInjection(t *testing.T) {
	for _, tc := range []struct {
		body, err string
	}{
		{`{"pace":{"mode":"rate","per_second":3},"messages":[]}`, ""},
		{`{"pace":{"mode":"burst"}}`, ""},
		{`{"pace":{"mode":"rate","per_second":0}}`, "rate must be a positive number"},
		{`{"pace":{"mode":"fast"}}`, `mode must be rate, burst or loop, got "fast"`},
		{`{"pace":{"mode":"loop","per_second":5}}`, "mode loop has no rate"},
		{`{"pace":{"mode":"rate","per_second":3},"speed":1}`, `unknown field "speed"`},
		{`[`, "inject: "},
	} {
		_, err := DecodeInjection(strings.NewReader(tc.body))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: got %v, want an error saying %q", tc.body, err, tc.err)
		}
	}
}

func FuzzDecodeInjection(f *testing.F) {
	f.Add(`{"pace":{"mode":"rate","per_second":3,"ramp_ns":1000000000,"max_lag_ns":500000000},"messages":[{"Round":1,"N":1,"From":"a@b","To":"c@d","Data":"x"}]}`)
	f.Add(`{"pace":{"mode":"burst"}}`)
	f.Add(`{"pace":{"mode":"rate","per_second":1e308}}`)
	f.Fuzz(func(t *testing.T, body string) {
		inj, err := DecodeInjection(strings.NewReader(body))
		if err != nil {
			return
		}
		if err := inj.Pace.Validate(); err != nil {
			t.Fatalf("accepted an invalid pace %+v: %v", inj.Pace, err)
		}
		if d := inj.Pace.Span(len(inj.Messages)); d < 0 {
			t.Fatalf("accepted pace %+v gives a negative span %s", inj.Pace, d)
		}
	})
}
