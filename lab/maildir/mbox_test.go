package maildir

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An mbox as Postfix's local(8) writes one: separator lines with the
// envelope sender and an asctime date, a blank line after each message,
// a body line beginning "From " quoted.
const postfixMbox = "From sender@example.com  Sun Dec  6 05:34:30 2026\n" +
	"Return-Path: <sender@example.com>\nMessage-ID: <1@x>\nSubject: a\n\nbody a\n>From the body\n\n" +
	"From sender@example.com  Sun Dec  6 05:34:31 2026\r\n" +
	"Message-ID: <2@x>\r\nSubject: b\r\n\r\nbody b\r\n>>From twice\r\n\r\n"

func TestSplitMbox(t *testing.T) {
	var msgs []string
	var ats []time.Time
	err := SplitMbox(strings.NewReader(postfixMbox), func(m []byte, at time.Time) error {
		msgs, ats = append(msgs, string(m)), append(ats, at)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Return-Path: <sender@example.com>\nMessage-ID: <1@x>\nSubject: a\n\nbody a\nFrom the body\n",
		"Message-ID: <2@x>\nSubject: b\n\nbody b\n>From twice\n",
	}
	if len(msgs) != 2 || msgs[0] != want[0] || msgs[1] != want[1] {
		t.Fatalf("messages %q, want %q", msgs, want)
	}
	if !ats[0].Equal(time.Date(2026, 12, 6, 5, 34, 30, 0, time.UTC)) || !ats[1].Equal(ats[0].Add(time.Second)) {
		t.Errorf("times %v", ats)
	}
	if err := SplitMbox(strings.NewReader("Subject: x\n"), func([]byte, time.Time) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), `mbox line 1: text before the first "From " line`) {
		t.Errorf("not an mbox: %v", err)
	}
}

// FromMbox puts an mbox's messages where List reads them, each with its
// separator line's time.
func TestFromMbox(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "m"))
	n, err := d.FromMbox(strings.NewReader(postfixMbox))
	if err != nil || n != 2 {
		t.Fatalf("%d messages, %v", n, err)
	}
	got, err := d.List()
	if err != nil || len(got) != 2 {
		t.Fatalf("list %v, %v", got, err)
	}
	for i, m := range got {
		if m.MessageID != []string{"<1@x>", "<2@x>"}[i] || m.ModTime.Unix() != time.Date(2026, 12, 6, 5, 34, 30+i, 0, time.UTC).Unix() {
			t.Errorf("message %d: %+v", i, m)
		}
	}
}

// FuzzSplitMbox: any input is split or refused without a panic; what is
// split never holds a separator line, and no message grows.
func FuzzSplitMbox(f *testing.F) {
	f.Add([]byte(postfixMbox))
	f.Add([]byte(""))
	f.Add([]byte("From \n"))
	f.Add([]byte("From a b c d e f\n>From x\n\nFrom "))
	f.Fuzz(func(t *testing.T, in []byte) {
		total := 0
		_ = SplitMbox(bytes.NewReader(in), func(m []byte, _ time.Time) error {
			total += len(m)
			for _, line := range strings.Split(string(m), "\n") {
				if strings.HasPrefix(line, "From ") && !strings.Contains(string(in), ">"+line) {
					t.Fatalf("a separator line in a message: %q", line)
				}
			}
			return nil
		})
		if total > len(in)+1 {
			t.Fatalf("%d bytes out of %d in", total, len(in))
		}
	})
}
