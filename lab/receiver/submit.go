package receiver

// submit's part of Courier R: what Courier's submit does with the MAIL
// FROM, the recipients and the message courieresmtpd hands it. Read in
// github.com/svarshavchik/courier:
//
//   - courier/courier/submit.C: BOFHCHECKDNS (checkdns), the BLOCK text
//     refusing every RCPT (checkrcpt, comerrmsg), the Received: header.
//   - courier/courier/module.esmtp/courieresmtpd.c: the "dns; HELO (HOST
//     [IP])" and "IDENT: user" it hands to submit, and the HELO name as
//     its ehlo() keeps it.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/resolver"
)

// checkDNS is submit's checkdns (courier/courier/submit.C) with
// BOFHCHECKDNS=1: the sender's domain must have MX records, or without
// them an address (RFC1035_MX_AFALLBACK); an MX naming an IP address
// violates RFC 1035 3.3.9. The null sender and a connection already
// blocked (refused at RCPT anyway) are not checked. The replies are
// Courier's, codes included (517 and 417 are Courier's own 5xx and 4xx).
// Each lookup is logged as an events.Check "mailfrom". (Courier also looks
// up each exchanger's addresses; the lab does not.)
func (ss *session) checkDNS(from string) *smtp.SMTPError {
	at := strings.LastIndexByte(from, '@')
	if at < 0 || ss.conn.block != "" {
		return nil
	}
	domain := strings.TrimSuffix(from[at+1:], ".")
	hard := func(why string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 517, EnhancedCode: smtp.EnhancedCode{5, 1, 8},
			Message: why + "\nInvalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>"}
	}
	soft := &smtp.SMTPError{Code: 417, EnhancedCode: smtp.EnhancedCode{4, 4, 3},
		Message: "DNS lookup failure: " + domain + ".  Try again later."}
	if strings.HasPrefix(domain, "[") || !hostName(domain) {
		return hard("Domain does not exist: " + domain + ".")
	}
	lookup := func(qtype uint16, f func(ctx context.Context) (string, error)) (string, error) {
		start := time.Now()
		tr := &resolver.Trace{}
		result, err := f(resolver.WithTrace(ss.s.ctx, tr))
		e := events.Event{Time: start, Kind: events.Check, Conn: ss.conn.id, Check: "mailfrom", Name: strings.ToLower(domain),
			QType: dns.TypeToString[qtype], Result: result, Duration: time.Since(start), Via: tr.Keys()}
		if err != nil {
			e.Result, e.Error = resolver.Result(err), err.Error()
		}
		ss.s.log.Add(e)
		return result, err
	}
	var mxs []string
	_, err := lookup(dns.TypeMX, func(ctx context.Context) (string, error) {
		m, err := ss.s.res.Exchange(ctx, domain, dns.TypeMX)
		if err != nil {
			return "", err
		}
		if m.Rcode != dns.RcodeSuccess {
			return "", &resolver.LookupError{Name: domain, QType: dns.TypeMX, Rcode: m.Rcode, NotFound: m.Rcode == dns.RcodeNameError}
		}
		for _, rr := range m.Answer {
			if mx, ok := rr.(*dns.MX); ok {
				mxs = append(mxs, strings.TrimSuffix(mx.Mx, "."))
			}
		}
		if len(mxs) == 0 {
			return "NODATA", nil
		}
		return strings.Join(mxs, ","), nil
	})
	var le *resolver.LookupError
	switch {
	case errors.As(err, &le) && le.NotFound:
		return hard("Domain does not exist: " + domain + ".")
	case err != nil:
		return soft
	}
	for _, mx := range mxs {
		if net.ParseIP(strings.Trim(mx, "[]")) != nil {
			return hard("MX records for " + domain + " violate section 3.3.9 of RFC 1035.")
		}
	}
	if len(mxs) > 0 {
		return nil
	}
	_, err = lookup(dns.TypeA, func(ctx context.Context) (string, error) {
		ips, err := ss.s.res.A(ctx, domain)
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		return strings.Join(got, ","), err
	})
	switch {
	case errors.As(err, &le) && le.NotFound:
		return hard("Domain does not exist: " + domain + ".")
	case err != nil:
		return soft
	}
	return nil
}

// received writes Courier's Received: header as submit writes it
// (courier/courier/submit.C, from the "dns; HELO (HOST [IP])" and
// "IDENT: user" courieresmtpd.c passes):
//
//	Received: from HELO (PTR [IP])
//	  (IDENT: user)
//	  by HOSTNAME with ESMTP
//	  id QUEUEID; DATE
//
// PTR is left out ("HELO ([IP])") when reverse DNS found no name or the
// name's A records do not contain the client (couriertcpd sets
// TCPREMOTEHOST only then); the IDENT line only when identd answered. The
// HELO name is written as courieresmtpd keeps it: spaces and control
// characters become '_' (and, here, 8-bit bytes too, so the header stays
// ASCII). go-smtp does not say whether the client said EHLO or HELO, so
// the protocol is always ESMTP (Courier writes SMTP after HELO).
func (ss *session) received(buf *bytes.Buffer) {
	c := ss.conn
	buf.WriteString("Received: from ")
	buf.WriteString(heloWord(ss.helo()))
	buf.WriteString(" (")
	if c.ptrName != "" && c.confirmed {
		buf.WriteString(headerSafe(c.ptrName))
		buf.WriteByte(' ')
	}
	buf.WriteByte('[')
	buf.WriteString(remoteIP(c))
	buf.WriteString("])\r\n")
	if c.identUser != "" {
		buf.WriteString("  (IDENT: ")
		buf.WriteString(headerSafe(c.identUser))
		buf.WriteString(")\r\n")
	}
	now := time.Now()
	buf.WriteString("  by ")
	buf.WriteString(ss.s.cfg.Hostname)
	buf.WriteString(" with ESMTP\r\n  id ")
	var b [64]byte
	buf.Write(appendQueueID(b[:0], now))
	buf.WriteString("; ")
	buf.Write(ss.date.of(now))
	buf.WriteString("\r\n")
}

// dateCache is the Received: header's date (RFC 1123 with a numeric
// zone, to the second) of the last second a session wrote one in: a
// session's messages mostly share their second, and formatting a date
// costs more than the rest of the header.
type dateCache struct {
	sec  int64
	zone int // the offset the text was written with
	text []byte
}

func (c *dateCache) of(now time.Time) []byte {
	_, zone := now.Zone()
	if c.text == nil || now.Unix() != c.sec || zone != c.zone {
		c.sec, c.zone = now.Unix(), zone
		c.text = now.AppendFormat(c.text[:0], time.RFC1123Z)
	}
	return c.text
}

var (
	queueSeq atomic.Uint64
	// pid is the process in every queue id (os.Getpid is a system call).
	pid = os.Getpid()
)

// appendQueueID appends a unique id in the form of Courier's queue ids
// (three hex fields: a sequence number, the time, the process), as
// %016X.%016X.%08X would, without fmt.
func appendQueueID(b []byte, now time.Time) []byte {
	b = appendHex(b, queueSeq.Add(1), 16)
	b = append(b, '.')
	b = appendHex(b, uint64(now.Unix()), 16)
	b = append(b, '.')
	return appendHex(b, uint64(pid), 8)
}

// appendHex appends v in upper-case hex, zero-padded to width digits.
func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789ABCDEF"
	n := 1
	for x := v >> 4; x != 0; x >>= 4 {
		n++
	}
	for ; width > n; width-- {
		b = append(b, '0')
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

// heloWord is the HELO name as courieresmtpd's ehlo() keeps it: every
// space or control character becomes '_' (8-bit bytes too, here).
func heloWord(s string) string {
	i := 0
	for i < len(s) && s[i] > ' ' && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s // nothing to replace: no copy
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

// headerSafe keeps a word from a client, the DNS or identd from breaking
// the header it is written into: anything but printable ASCII becomes '?'.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

// blockReply is the answer to every RCPT of a blocked connection, as
// Courier's submit (checkrcpt, comerrmsg) gives it: 511 and the block
// text, with no enhanced code, unless the text starts with a code of its
// own between 400 and 599.
func blockReply(text string) *smtp.SMTPError {
	code := 511
	if len(text) > 4 && text[3] == ' ' {
		if n, err := strconv.Atoi(text[:3]); err == nil && n >= 400 && n <= 599 {
			code, text = n, text[4:]
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
}
