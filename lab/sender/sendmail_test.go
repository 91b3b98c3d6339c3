package sender

import (
	"bytes"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSendmailArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want SendmailArgs
		code int // exit code of the error, 0 for none
	}{
		{args: []string{"a@b.c"}, want: SendmailArgs{Rcpts: []string{"a@b.c"}}},
		{args: []string{"-f", "me@x.y", "a@b.c", "d@e.f"}, want: SendmailArgs{From: "me@x.y", Rcpts: []string{"a@b.c", "d@e.f"}}},
		{args: []string{"-fme@x.y", "a@b.c"}, want: SendmailArgs{From: "me@x.y", Rcpts: []string{"a@b.c"}}},
		{args: []string{"-F", "Me Myself", "-f", "me@x.y", "a@b.c"}, want: SendmailArgs{From: "me@x.y", FullName: "Me Myself", Rcpts: []string{"a@b.c"}}},
		{args: []string{"-FMe", "a@b.c"}, want: SendmailArgs{FullName: "Me", Rcpts: []string{"a@b.c"}}},
		{args: []string{"-i", "a@b.c"}, want: SendmailArgs{IgnoreDots: true, Rcpts: []string{"a@b.c"}}},
		{args: []string{"-oi", "a@b.c"}, want: SendmailArgs{IgnoreDots: true, Rcpts: []string{"a@b.c"}}},
		{args: []string{"-t"}, want: SendmailArgs{FromHeader: true}},
		{args: []string{"-t", "-i", "a@b.c"}, want: SendmailArgs{FromHeader: true, IgnoreDots: true, Rcpts: []string{"a@b.c"}}},
		{args: []string{"-oem", "-odb", "-o", "a@b.c"}, want: SendmailArgs{Rcpts: []string{"a@b.c"}}},
		{args: []string{"--", "a@b.c", "d@e.f"}, want: SendmailArgs{Rcpts: []string{"a@b.c", "d@e.f"}}},
		{args: []string{"-f", "me@x.y", "--", "a@b.c"}, want: SendmailArgs{From: "me@x.y", Rcpts: []string{"a@b.c"}}},

		{args: []string{"-x", "a@b.c"}, code: ExitUsage},
		{args: []string{"-bs"}, code: ExitUsage},
		{args: []string{"a@b.c", "-f"}, code: ExitUsage},
		{args: []string{"a@b.c", "-F"}, code: ExitUsage},
		{args: nil, code: ExitUsage},
		{args: []string{"-f", "me@x.y"}, code: ExitUsage},
		{args: []string{"-i", "--"}, code: ExitUsage},
		{args: []string{"nobody"}, code: ExitDataErr},
		{args: []string{"@b.c"}, code: ExitDataErr},
		{args: []string{"a@"}, code: ExitDataErr},
		{args: []string{"a b@c.d"}, code: ExitDataErr},
		{args: []string{"<a@b.c>"}, code: ExitDataErr},
		{args: []string{"-"}, code: ExitDataErr},
		{args: []string{"-f", "not-an-address", "a@b.c"}, code: ExitDataErr},
		{args: []string{"-fme", "a@b.c"}, code: ExitDataErr},
		{args: []string{"a@b.c", "bad"}, code: ExitDataErr},
	} {
		got, err := ParseSendmailArgs(tc.args)
		if tc.code == 0 {
			if err != nil {
				t.Errorf("ParseSendmailArgs(%q): %v", tc.args, err)
			} else if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseSendmailArgs(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
			continue
		}
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("ParseSendmailArgs(%q) = %+v, %v; want a *UsageError with code %d", tc.args, got, err, tc.code)
		} else if ue.Code != tc.code {
			t.Errorf("ParseSendmailArgs(%q): code %d (%v), want %d", tc.args, ue.Code, ue, tc.code)
		}
	}
}

var testNow = time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC)

func build(t *testing.T, a SendmailArgs, in string) (*mail.Message, []byte, string, []string) {
	t.Helper()
	text, id, rcpts, err := BuildMessage(a, strings.NewReader(in), "host.test", testNow)
	if err != nil {
		t.Fatalf("BuildMessage(%+v, %q): %v", a, in, err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("BuildMessage output does not parse: %v\n%s", err, text)
	}
	return m, text, id, rcpts
}

func body(t *testing.T, m *mail.Message) string {
	t.Helper()
	var b bytes.Buffer
	b.ReadFrom(m.Body)
	return b.String()
}

func TestBuildMessageAddsHeaders(t *testing.T) {
	a := SendmailArgs{From: "me@x.y", FullName: "Me Myself", Rcpts: []string{"a@b.c"}}
	m, _, id, rcpts := build(t, a, "Subject: hi\n\nbody\n")
	if id == "" || m.Header.Get("Message-Id") != id {
		t.Errorf("Message-ID header %q, returned %q", m.Header.Get("Message-Id"), id)
	}
	if !strings.HasSuffix(id, "@host.test>") || !strings.HasPrefix(id, "<") {
		t.Errorf("Message-ID %q, want <...@host.test>", id)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(testNow) {
		t.Errorf("Date %v (%v), want %v", d, err, testNow)
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil || from.Address != "me@x.y" || from.Name != "Me Myself" {
		t.Errorf("From %q (%v), want Me Myself <me@x.y>", m.Header.Get("From"), err)
	}
	if m.Header.Get("Subject") != "hi" || body(t, m) != "body\n" {
		t.Errorf("Subject %q, body %q", m.Header.Get("Subject"), body(t, m))
	}
	if rcpts != nil {
		t.Errorf("recipients %v without -t", rcpts)
	}

	// Two messages never share a generated Message-ID.
	_, _, id2, _ := build(t, a, "Subject: hi\n\nbody\n")
	if id2 == id {
		t.Errorf("two messages with Message-ID %s", id)
	}

	// Without -f the sender is root@hostname, as in the envelope.
	m, _, _, _ = build(t, SendmailArgs{Rcpts: []string{"a@b.c"}}, "Subject: hi\n\nbody\n")
	if got := m.Header.Get("From"); got != "root@host.test" {
		t.Errorf("From %q without -f, want root@host.test", got)
	}
}

func TestBuildMessageKeepsHeaders(t *testing.T) {
	in := "Message-ID: <keep@me>\nDate: Tue, 1 Jun 1999 10:00:00 +0000\nFrom: Orig <orig@x.y>\nSubject: s\n\nbody\n"
	_, text, id, _ := build(t, SendmailArgs{From: "me@x.y", Rcpts: []string{"a@b.c"}}, in)
	if id != "<keep@me>" {
		t.Errorf("Message-ID %q, want <keep@me>", id)
	}
	if string(text) != in {
		t.Errorf("message changed:\n%s\nwant\n%s", text, in)
	}
}

func TestBuildMessageDots(t *testing.T) {
	in := "Subject: dots\n\nbefore\n.\nafter\n"
	m, _, _, _ := build(t, SendmailArgs{Rcpts: []string{"a@b.c"}}, in)
	if got := body(t, m); got != "before\n" {
		t.Errorf("without -i body %q, want the text up to the lone dot", got)
	}
	m, _, _, _ = build(t, SendmailArgs{Rcpts: []string{"a@b.c"}, IgnoreDots: true}, in)
	if got := body(t, m); got != "before\n.\nafter\n" {
		t.Errorf("with -i body %q, want all of it", got)
	}
	m, _, _, _ = build(t, SendmailArgs{Rcpts: []string{"a@b.c"}}, "Subject: dots\r\n\r\nbefore\r\n.\r\nafter\r\n")
	if got := body(t, m); got != "before\r\n" {
		t.Errorf("without -i, CRLF: body %q, want the text up to the lone dot", got)
	}
	m, _, _, _ = build(t, SendmailArgs{Rcpts: []string{"a@b.c"}}, "Subject: dots\n\n..\n. \nend")
	if got := body(t, m); got != "..\n. \nend" {
		t.Errorf("body %q: only a lone dot ends the message", got)
	}
}

func TestBuildMessageFromHeaders(t *testing.T) {
	in := "To: A <a@b.c>, d@e.f\nCc: g@h.i\nBcc: secret@j.k,\n  folded@l.m\nSubject: s\nBCC: other@n.o\n\nbody\nBcc: not@a.header\n"
	m, text, _, rcpts := build(t, SendmailArgs{FromHeader: true}, in)
	want := []string{"a@b.c", "d@e.f", "g@h.i", "secret@j.k", "folded@l.m", "other@n.o"}
	if !slices.Equal(rcpts, want) {
		t.Errorf("recipients %v, want %v", rcpts, want)
	}
	if v := m.Header["Bcc"]; len(v) != 0 {
		t.Errorf("Bcc header kept: %q", v)
	}
	for _, secret := range []string{"secret@j.k", "folded@l.m", "other@n.o"} {
		if bytes.Contains(text, []byte(secret)) {
			t.Errorf("Bcc recipient %s shows in the message:\n%s", secret, text)
		}
	}
	if m.Header.Get("Subject") != "s" || m.Header.Get("Cc") != "g@h.i" {
		t.Errorf("headers lost:\n%s", text)
	}
	if got := body(t, m); got != "body\nBcc: not@a.header\n" {
		t.Errorf("body %q", got)
	}

	// Without -t, Bcc is not read and recipients come from the operands.
	_, _, _, rcpts = build(t, SendmailArgs{Rcpts: []string{"x@y.z"}}, in)
	if rcpts != nil {
		t.Errorf("recipients %v without -t", rcpts)
	}
}

func TestBuildMessageErrors(t *testing.T) {
	for _, tc := range []struct {
		a    SendmailArgs
		in   string
		code int
	}{
		{SendmailArgs{FromHeader: true}, "Subject: none\n\nbody\n", ExitUsage},
		{SendmailArgs{FromHeader: true}, "To: not an address\n\nbody\n", ExitDataErr},
		{SendmailArgs{Rcpts: []string{"a@b.c"}}, " leading space: x\n\nbody\n", ExitDataErr},
	} {
		_, _, _, err := BuildMessage(tc.a, strings.NewReader(tc.in), "host.test", testNow)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Code != tc.code {
			t.Errorf("BuildMessage(%+v, %q): %v, want a *UsageError with code %d", tc.a, tc.in, err, tc.code)
		}
	}
}

func TestSendmail(t *testing.T) {
	dir := t.TempDir()
	in := "Subject: hello\n\nthe body\n.\nnot sent\n"
	if err := Sendmail([]string{"-f", "me@src.test", "a@h.test", "b@g.test"}, strings.NewReader(in), dir, "host.test"); err != nil {
		t.Fatal(err)
	}
	if err := Sendmail([]string{"-t"}, strings.NewReader("To: c@h.test\nBcc: d@h.test\n\nsecond\n"), dir, "host.test"); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, dir)
	ids := queueIDs(t, q)
	if len(ids) != 2 {
		t.Fatalf("queue %v, want two messages", ids)
	}
	for i, want := range []struct {
		from, body string
		rcpts      []string
	}{
		{"me@src.test", "the body\n", []string{"a@h.test", "b@g.test"}},
		{"root@host.test", "second\n", []string{"c@h.test", "d@h.test"}},
	} {
		env, err := q.Envelope(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if env.From != want.from || !slices.Equal(env.Rcpts, want.rcpts) {
			t.Errorf("message %d: envelope from %s to %v, want from %s to %v", i, env.From, env.Rcpts, want.from, want.rcpts)
		}
		text, err := q.Text(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("message %d does not parse: %v", i, err)
		}
		if env.MessageID == "" || m.Header.Get("Message-Id") != env.MessageID {
			t.Errorf("message %d: Message-ID header %q, envelope %q", i, m.Header.Get("Message-Id"), env.MessageID)
		}
		if got := body(t, m); got != want.body {
			t.Errorf("message %d: body %q, want %q", i, got, want.body)
		}
		if len(m.Header["Bcc"]) != 0 {
			t.Errorf("message %d: Bcc header queued", i)
		}
	}
}

func TestSendmailExitCodes(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		in   string
		dir  string
		code int
	}{
		{"unknown option", []string{"-q", "a@b.c"}, "x\n", "", ExitUsage},
		{"no recipients", nil, "\nx\n", "", ExitUsage},
		{"bad recipient", []string{"nobody"}, "\nx\n", "", ExitDataErr},
		{"bad -t recipient", []string{"-t"}, "To: \"x y\"@b.c\n\nx\n", "", ExitDataErr},
		{"bad header", []string{"a@b.c"}, " bad\n\nx\n", "", ExitDataErr},
		{"queue not a directory", []string{"a@b.c"}, "\nx\n", notDir, ExitTempFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			err := Sendmail(tc.args, strings.NewReader(tc.in), dir, "host.test")
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Code != tc.code {
				t.Fatalf("Sendmail: %v, want a *UsageError with code %d", err, tc.code)
			}
			if tc.dir == "" {
				if ids := queueIDs(t, openQueue(t, dir)); len(ids) != 0 {
					t.Errorf("refused message queued: %v", ids)
				}
			}
		})
	}
}

func FuzzParseSendmailArgs(f *testing.F) {
	for _, s := range []string{
		"a@b.c", "-f\x00me@x.y\x00a@b.c", "-fme@x.y\x00a@b.c", "-F\x00Name\x00a@b.c", "-i\x00-oi\x00-t",
		"-oem\x00a@b.c", "--\x00a@b.c", "-x", "-f", "", "-t\x00--", "-", "a@", "@b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\x00")
		}
		a, err := ParseSendmailArgs(args)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || (ue.Code != ExitUsage && ue.Code != ExitDataErr) || ue.Msg == "" {
				t.Fatalf("ParseSendmailArgs(%q): error %#v is not a usage or data error", args, err)
			}
			return
		}
		if len(a.Rcpts) == 0 && !a.FromHeader {
			t.Fatalf("ParseSendmailArgs(%q) = %+v: no recipients and no -t", args, a)
		}
		for _, r := range append(slices.Clone(a.Rcpts), a.From) {
			if r != "" && checkAddress(r) != nil {
				t.Fatalf("ParseSendmailArgs(%q) accepted %q", args, r)
			}
		}
	})
}

func FuzzBuildMessage(f *testing.F) {
	for _, s := range []string{
		"Subject: hi\n\nbody\n",
		"Message-ID: <x@y>\nTo: a@b.c\n\nbody\n.\nmore\n",
		"To: a@b.c\nBcc: d@e.f,\n g@h.i\n\n",
		"Bcc: a@b.c\n\n",
		"\nno headers\n",
		"",
		".\n",
		"Subject: x\r\n\r\nbody\r\n",
		"Message-ID: \nTo: a@b.c\n\n",
		"MessAge-ID:0\n ",
	} {
		f.Add(s, false, false)
		f.Add(s, true, true)
	}
	f.Fuzz(func(t *testing.T, in string, ignoreDots, fromHeader bool) {
		a := SendmailArgs{From: "me@x.y", IgnoreDots: ignoreDots, FromHeader: fromHeader}
		if !fromHeader {
			a.Rcpts = []string{"a@b.c"}
		}
		text, id, rcpts, err := BuildMessage(a, strings.NewReader(in), "host.test", testNow)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("BuildMessage(%q): error %#v is not a *UsageError", in, err)
			}
			return
		}
		m, err := mail.ReadMessage(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("BuildMessage(%q) = %q, which does not parse: %v", in, text, err)
		}
		// net/mail keeps the blanks of a folded, empty continuation line
		// ("0\n \n"), textproto trims them: the identity is the trimmed text.
		if got := strings.TrimSpace(m.Header.Get("Message-Id")); got == "" || got != id {
			t.Fatalf("BuildMessage(%q) = %q: Message-ID header %q, returned %q", in, text, got, id)
		}
		if fromHeader {
			if len(rcpts) == 0 {
				t.Fatalf("BuildMessage(%q): -t and no recipients, no error", in)
			}
			if len(m.Header["Bcc"]) != 0 {
				t.Fatalf("BuildMessage(%q) = %q: Bcc kept with -t", in, text)
			}
		}
	})
}
