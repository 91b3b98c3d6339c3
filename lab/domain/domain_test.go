package domain

import "testing"

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		pat, host string
		want      bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "a.example.com", false},
		{".example.com", "a.example.com", true},
		{".example.com", "example.com", false},
		{".example.com", "A.Foo.Example.COM.", true},
		{".example.com", "badexample.com", false},
	} {
		if got := Matches(c.pat, c.host); got != c.want {
			t.Errorf("Matches(%q, %q) = %v", c.pat, c.host, got)
		}
	}
}
