package receiver

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzMaxMessage bounds the receiver's messages.
const fuzzMaxMessage = 64 << 10

// FuzzSession plays whole SMTP sessions, one per input, over a real
// connection to a running receiver (with its real DNS and IDENT checks), in
// the spirit of chasquid's internal/smtpsrv fuzz test: each input line is
// sent as a command and its reply read; after a 354 the following lines are
// the message, up to a "." line, or after a 354 and a "RAW" line the rest
// of the input is sent as it is, bare LF, NUL and all, with the end of
// data after it. Every line goes through front.go, the parser of the
// client's lines in front of go-smtp. After each session:
//   - go-smtp recovered no panic (a panic elsewhere kills the fuzzer);
//   - every command drew exactly one reply: a HELP sent after the input's
//     lines (unless the session ended or went RAW) is answered by the next
//     reply, the only 214 there is;
//   - every message in the Maildir is for a local recipient: its
//     Delivered-To is one address whose domain is local and whose local
//     part is the account or account-extension; Return-Path follows;
//   - the Received: header (all its lines) carries no control character
//     from the client;
//   - every 250 to the end of a message left at least one file.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\nMAIL FROM:<a@b.org>\nRCPT TO:<recipient-foo-7@7.foo.example.com>\nDATA\nMessage-ID: <s1@fuzz>\nSubject: s\n\nbody\n.\nQUIT\n",
		"HELO x\nMAIL FROM:<>\nRCPT TO:<someone@evil.org>\nRCPT TO:<recipient@evil.org>\nDATA\nx\n.\nQUIT",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient-x@evil.org@7.foo.example.com>\nRCPT TO:<\"recipient-a@evil.org\"@x.example.com>\nRCPT TO:<@relay.example.com:recipient@evil.org>\nDATA\nhi\n.\n",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nMAIL FROM:<c@d>\nDATA\nhi\n.\n",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nBDAT 10\nBDAT 20 LAST\nQUIT",
		"EHLO x\nBDAT 70000\nNOOP",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<postmaster>\nRCPT TO:<PostMaster@x.example.com>\nRCPT TO:<postmaster@evil.org>\nDATA\nhi\n.\n",
		"\nAB\nXYZZY\nHELLO x\nMAIL \nHELP\nhelp me\nLHLO x\nSTARTTLSX\n" + strings.Repeat("z", 5200) + "\nNOOP",
		"\x00\xff\n\n\nHELO\nEHLO \r\nRSET\nNOOP\nVRFY x\nAUTH PLAIN AAAA\nSTARTTLS\nHELP\n",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient-x%evil.org@7.foo.example.com>\nRCPT TO:<evil.org!recipient@x.example.com>\nDATA\nhi\n.\n",
		"EHLO x\nMAIL FROM:<a@b> SIZE=10\nRCPT TO:<RECIPIENT@X.EXAMPLE.COM.>\nRCPT TO:<recipient@[127.0.0.1]>\nRCPT TO:<recipient@example.com>\nDATA\n.\n",
		"EHLO a\rb\x01c\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\n..leading dot\n.\nEHLO again\nMAIL FROM:<a@b>\nRCPT TO:<recipient@y.example.com>\nRSET\nDATA\n",
		// The DATA path: dot-stuffing, a final line without CRLF, bare LF
		// and CR, NUL, an empty message, a long line.
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\n..\n...x\n. \nend.\n.\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\n.\nQUIT",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\nRAW\nMessage-ID: <raw@fuzz>\n\nbare\n.\nlf\x00nul\r.\r\nend.",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\nRAW\n.\r\nQUIT\r\nMAIL FROM:<smuggled@b>",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\nSubject: \x00\r\x7f\n\n" + strings.Repeat("y", 1990) + "\n.\nNOOP",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<recipient@x.example.com>\nDATA\n" + strings.Repeat("y", 3000) + "\n.\nNOOP",
	} {
		f.Add([]byte(s))
	}
	l := startLab(f, dnsConfig(clientZone(), twoZones), func(c *Config) { c.MaxMessage = fuzzMaxMessage })
	f.Fuzz(func(t *testing.T, in []byte) {
		accepted := fuzzSession(t, l.addr, in)
		checkFuzzMaildir(t, l, accepted)
		if p := l.errs.take(); len(p) > 0 {
			t.Fatalf("the SMTP server panicked: %q", p)
		}
	})
}

// fuzzSession plays in and returns how many messages the receiver accepted
// (250 to the end of DATA).
func fuzzSession(t *testing.T, addr string, in []byte) (accepted int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := textproto.NewReader(bufio.NewReader(c))
	// A receiver that neither answers nor closes is hung: a bug.
	reply := func(after string) (int, bool) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		code, _, err := r.ReadResponse(0)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("no reply after %q", after)
		case err != nil:
			return 0, false // closed by the server (too long line, too many errors)
		}
		return code, true
	}
	send := func(b []byte) bool {
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := c.Write(b)
		return err == nil
	}
	if code, ok := reply("connect"); !ok || code != 220 {
		t.Fatalf("greeting %d", code)
	}
	lines := bytes.Split(in, []byte("\n"))
	if len(lines) > 64 {
		lines = lines[:64]
	}
	for i := 0; i < len(lines); i++ {
		line := bytes.TrimSuffix(lines[i], []byte("\r"))
		if !send(append(line, '\r', '\n')) {
			return accepted
		}
		code, ok := reply(string(line))
		if !ok || code == 221 {
			return accepted
		}
		if code != 354 {
			continue
		}
		// A "RAW" line: the rest of the input goes out as it is (bare LF,
		// NUL, dots and all), then the end of data; the session ends there.
		if i+1 < len(lines) && string(bytes.TrimSuffix(lines[i+1], []byte("\r"))) == "RAW" {
			rest := bytes.Join(lines[i+2:], []byte("\n"))
			if !send(append(rest, "\r\n.\r\n"...)) {
				return accepted
			}
			if code, ok := reply("end of raw data"); ok && code == 250 {
				accepted++
			}
			return accepted
		}
		// The message: the next lines, up to a "." line or the input's end.
		var msg []byte
		for i++; i < len(lines); i++ {
			dl := bytes.TrimSuffix(lines[i], []byte("\r"))
			if string(dl) == "." {
				break
			}
			msg = append(append(msg, dl...), '\r', '\n')
		}
		if !send(append(msg, ".\r\n"...)) {
			return accepted
		}
		code, ok = reply("end of data")
		if !ok {
			return accepted
		}
		if code == 250 {
			accepted++
		}
	}
	// One reply per command: had any line drawn two, or none, the next
	// reply would not be HELP's 214.
	if send([]byte("HELP\r\n")) {
		if code, ok := reply("HELP"); ok && code != 214 {
			t.Fatalf("HELP after the session answered %d: a command drew more or fewer than one reply", code)
		}
	}
	return accepted
}

// localRecipient is the test's own reading of the receiver's contract for
// the lab config (LocalDomains [".example.com"], Account "recipient").
func localRecipient(addr string) bool {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || strings.Contains(domain, "@") || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return false
	}
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	local = strings.ToLower(local)
	if local == "postmaster" && (d == hostname || strings.HasSuffix(d, ".example.com") && len(d) > len(".example.com")) {
		return true // RFC 5321 4.5.1: at every local domain, and alone (qualified with the hostname)
	}
	return strings.HasSuffix(d, ".example.com") && len(d) > len(".example.com") &&
		(local == account || strings.HasPrefix(local, account+"-"))
}

// checkFuzzMaildir checks every message in new/ and removes it.
func checkFuzzMaildir(t *testing.T, l *lab, accepted int) {
	ents, err := os.ReadDir(filepath.Join(string(l.dir), "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < accepted {
		t.Errorf("%d messages accepted, %d files in new/", accepted, len(ents))
	}
	for _, e := range ents {
		p := filepath.Join(string(l.dir), "new", e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		br := bufio.NewReader(bytes.NewReader(data))
		first, _ := br.ReadString('\n')
		rcpt, ok := strings.CutPrefix(first, "Delivered-To: ")
		rcpt, ok2 := strings.CutSuffix(rcpt, "\n")
		if !ok || !ok2 || !localRecipient(rcpt) {
			t.Errorf("message for a non-local recipient: %q", first)
		}
		second, _ := br.ReadString('\n')
		if !strings.HasPrefix(second, "Return-Path: <") || !strings.HasSuffix(second, ">\n") {
			t.Errorf("Return-Path: line %q", second)
		}
		// Received: and its continuation lines carry nothing from the
		// client that could break the header.
		for i := 0; ; i++ {
			line, _ := br.ReadString('\n')
			if i == 0 && !strings.HasPrefix(line, "Received: from ") || i > 0 && !strings.HasPrefix(line, "  ") {
				if i < 3 {
					t.Errorf("Received: header line %d: %q", i, line)
				}
				break
			}
			if strings.ContainsFunc(strings.TrimSuffix(line, "\n"), func(r rune) bool { return r < ' ' || r >= 0x7f }) {
				t.Errorf("Received: line %q", line)
			}
		}
	}
	if cur, _ := os.ReadDir(filepath.Join(string(l.dir), "cur")); len(cur) != 0 {
		t.Errorf("%d files in cur/", len(cur))
	}
}

// FuzzMessageID: the header scan finds what net/textproto finds, for any
// message.
func FuzzMessageID(f *testing.F) {
	for _, s := range []string{
		"Message-ID: <a@b>\r\n\r\nbody",
		"From: x\r\nmessage-id:   <a@b>  \r\n\r\n",
		"Subject: s\r\nMessage-ID: <a@b>\r\n folded\r\n\r\n",
		" leading\r\nMessage-ID: <a@b>\r\n\r\n",
		"Bad Name: x\r\nMessage-ID: <a@b>\r\n\r\n",
		"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n",
		"no colon\r\nMessage-ID: <a@b>\r\n\r\n",
		"Message-ID: <a@b>",
		"\r\nMessage-ID: <a@b>\r\n",
		"Message-ID: <\xc3\xa9@b>\n\n",
		"X: \x00\r\nMessage-ID: <a@b>\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if got, want := messageID(msg), messageIDTextproto(msg); got != want {
			t.Errorf("messageID(%q) = %q, textproto reads %q", msg, got, want)
		}
	})
}

// FuzzDotScan: the front's scan of buffered bytes (readData) ends the
// message exactly where go-smtp's state machine, stepped a byte at a
// time, ends it, however the bytes arrive in pieces.
func FuzzDotScan(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b>\r\n",
		".\r\n",
		"..stuffed\r\n.\r\n",
		"bare\n.\nLF\r\n.x\r\n.\r\r\n.\r\n",
		"\r\r\r\n.\r\n",
		"no end",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		want, stepped := -1, dotBeginLine
		for i, c := range in {
			if stepped.step(c) {
				want = i + 1
				break
			}
		}
		got, scanned := -1, dotBeginLine
		size := int(piece)%16 + 1
		for off := 0; off < len(in); off += size {
			n, end := scanned.scan(in[off:min(off+size, len(in))])
			if end {
				got = off + n
				break
			}
			if n != min(size, len(in)-off) {
				t.Fatalf("scan took %d of %d bytes without the end", n, min(size, len(in)-off))
			}
		}
		if got != want || want < 0 && scanned != stepped {
			t.Fatalf("scan in pieces of %d ends at %d (state %d), stepping at %d (state %d)", size, got, scanned, want, stepped)
		}
	})
}

// classifyByStrings is classify as it was written before it stopped
// copying the line: strings.TrimRight, Cut and ToUpper of a string.
func classifyByStrings(line []byte, tooLong bool) (verb, reply string) {
	if tooLong {
		return "", replyTooLong
	}
	cmd := strings.TrimRight(string(line), "\r\n")
	word, _, hasArg := strings.Cut(cmd, " ")
	verb = strings.ToUpper(word)
	switch {
	case verb == "HELP":
		return "", replyHelp
	case !passed[verb]:
		return "", replyUnknown
	case verb == "STARTTLS":
		return verb, ""
	case hasArg && len(cmd) == len("MAIL "):
		return "", replySyntax
	}
	return verb, ""
}

// FuzzClassify: the front decides every command line as the string
// version did, 8-bit verbs ("ſend" is SEND to strings.ToUpper) included.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"MAIL FROM:<a@b>\r\n", "mail \r\n", "help\r\n", "starttls\r\n", "ſend x\r\n",
		"BDAT 1\r\n", "STARTTLSX\r\n", "ehlo\n", "\r\n", "rcpt  TO:<a@b>", "HELP me\r\n", "ı\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		verb, reply := classify(line, false)
		wantVerb, wantReply := classifyByStrings(line, false)
		if reply != wantReply || reply == "" && verb != wantVerb {
			t.Fatalf("classify(%q) = %q, %q; the string version %q, %q", line, verb, reply, wantVerb, wantReply)
		}
	})
}
