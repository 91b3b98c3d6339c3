package receiver

// module.local's part of Courier R: the dot-courier lookup of a local
// address and the delivery of each copy into its Maildir. Read in
// github.com/svarshavchik/courier:
//
//   - courier/courier/module.local/dotcourier.c and
//     courier/courier/doc/dot-courier.sgml: address extensions and the
//     .courier-foo-default search.
//   - courier/courier/module.local/deliver.c: Delivered-To: and
//     Return-Path: written on top of each Maildir copy.

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
)

// local is Delivery made ready: every Maildir created, rules by name.
type local struct {
	def   maildir.Dir
	rules map[string][]maildir.Dir // ".courier..." -> where
}

// prepare checks d and creates every Maildir its rules name.
func (d Delivery) prepare() (*local, error) {
	l := &local{def: maildir.Dir(d.Maildir), rules: map[string][]maildir.Dir{}}
	rules := d.Rules
	if len(rules) == 0 {
		rules = []Rule{{File: "-default"}}
	}
	for _, r := range rules {
		name := ".courier" + strings.ToLower(r.File)
		if r.File != "" && !strings.HasPrefix(r.File, "-") || strings.ContainsAny(r.File, "/.") {
			return nil, fmt.Errorf("receiver: rule %q: want \"\" or \"-ext\" (periods written as colons)", r.File)
		}
		if _, dup := l.rules[name]; dup {
			return nil, fmt.Errorf("receiver: rule %q given twice", r.File)
		}
		dirs := []maildir.Dir{l.def}
		if len(r.Maildirs) > 0 {
			dirs = nil
			for _, m := range r.Maildirs {
				md := maildir.Dir(m)
				if err := md.Create(); err != nil {
					return nil, fmt.Errorf("receiver: rule %q: %w", r.File, err)
				}
				dirs = append(dirs, md)
			}
		}
		l.rules[name] = dirs
	}
	return l, nil
}

// lookup finds where mail for extension ext ("" for the bare account)
// goes, as local_dotcourier does (courier/courier/module.local/
// dotcourier.c): .courier-EXT, then each .courier-PREFIX-default, then
// .courier-default.
func (l *local) lookup(ext string) (dirs []maildir.Dir, file string, ok bool) {
	if ext == "" {
		if d, ok := l.rules[".courier"]; ok {
			return d, ".courier", true
		}
		return []maildir.Dir{l.def}, "", true
	}
	name := ".courier-" + strings.ReplaceAll(strings.ToLower(ext), ".", ":")
	for first := true; ; first = false {
		if d, ok := l.rules[name]; ok {
			return d, name, true
		}
		name = name[:strings.LastIndexByte(name, '-')]
		if !first {
			i := strings.LastIndexByte(name, '-')
			if i < 0 {
				return nil, "", false
			}
			name = name[:i]
		}
		name += "-default"
	}
}

// deliver writes one copy of the message (head, then body) per recipient
// and Maildir, all or nothing: if one copy cannot be written the copies
// already in new/ are taken back and errDelivery returned. Once every
// copy is in new/ it returns a Delivered event for each, for Data to log
// with DATA's Command (one write to the event spool for all).
func (ss *session) deliver(head, body []byte, msgID string) ([]events.Event, *smtp.SMTPError) {
	type copyOf struct {
		rcpt string
		path string
		took time.Duration // write, fsync, rename: the disk's share
	}
	var done []copyOf
	// Courier keeps mail with Unix line ends: submit takes the CRs of
	// SMTP's CRLFs off before the message is stored, and courierlocal
	// writes the stored lines into the Maildir file (RFC 5321 2.3.8's CRLF
	// is the wire's, not the mailbox's).
	from := headerSafe(ss.from)
	buf := ss.file[:0]
	defer func() {
		if cap(buf) <= keepBuffer {
			ss.file = buf[:0] // Deliver wrote it out: nothing holds it now
		}
	}()
	for _, rc := range ss.rcpts {
		for _, dir := range rc.dirs {
			// courierlocal's deliver.c writes these two on top of each
			// copy (mkdelheaders).
			buf = append(buf[:0], "Delivered-To: "...)
			buf = append(buf, rc.addr...)
			buf = append(buf, "\nReturn-Path: <"...)
			buf = append(buf, from...)
			buf = append(buf, ">\n"...)
			buf = appendUnixLines(buf, head)
			buf = appendUnixLines(buf, body)
			t0 := time.Now()
			path, err := dir.Deliver(buf, ss.s.cfg.Hostname, !ss.s.cfg.NoFsync)
			if err != nil {
				for _, d := range done {
					os.Remove(d.path)
				}
				return nil, errDelivery
			}
			done = append(done, copyOf{rc.addr, path, time.Since(t0)})
		}
	}
	evs := make([]events.Event, len(done), len(done)+1) // room for DATA's Command
	for i, d := range done {
		evs[i] = events.Event{Kind: events.Delivered, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: []string{d.rcpt}, Path: d.path, Duration: d.took}
	}
	return evs, nil
}

// appendUnixLines appends b to dst with its CRLF line ends turned into LF.
func appendUnixLines(dst, b []byte) []byte {
	for {
		i := bytes.Index(b, crlf)
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(dst, b[:i]...)
		dst = append(dst, '\n')
		b = b[i+2:]
	}
}

var crlf = []byte("\r\n")
