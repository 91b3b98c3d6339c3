package identd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Reply is one parsed RFC 1413 reply. Exactly one of UserID (with OS) and
// Error is set; Charset is set only when the reply's opsys field names one
// ("UNIX , US-ASCII").
type Reply struct {
	ServerPort, ClientPort int
	UserID, OS, Error      string
	Charset                string
}

// String formats r as a reply line without the trailing CRLF.
func (r Reply) String() string {
	if r.Error != "" {
		return fmt.Sprintf("%d, %d : ERROR : %s", r.ServerPort, r.ClientPort, r.Error)
	}
	opsys := r.OS
	if r.Charset != "" {
		opsys += " , " + r.Charset
	}
	return fmt.Sprintf("%d, %d : USERID : %s : %s", r.ServerPort, r.ClientPort, opsys, r.UserID)
}

// ParseReply parses every reply form of RFC 1413:
//
//	6193, 23 : USERID : UNIX : stjohns
//	6193, 23 : USERID : OTHER , US-ASCII : some user:with colons
//	6195, 23 : ERROR : NO-USER
//	6195, 23 : ERROR : X-LAB-SPECIFIC
//
// Spaces and tabs around every token are ignored, the keywords USERID and
// ERROR in any case, and a trailing CRLF is allowed. The user-id is the rest
// of the line after the third colon, so it may itself contain colons and
// inner spaces (RFC 1413 allows any octet but NUL, CR and LF there); the
// opsys field splits at its first ',' into OS and Charset. Any error type
// is accepted, not only the standard ones (see ValidErrorType). Ports are
// not range checked because servers echo the bad ports of an INVALID-PORT
// reply and answer "0, 0" to garbage. Anything else is an error wrapping
// ErrMalformed.
func ParseReply(line string) (Reply, error) {
	line = strings.TrimRight(line, "\r\n")
	bad := func(why string) (Reply, error) {
		return Reply{}, fmt.Errorf("%w: reply %q: %s", ErrMalformed, trunc(line), why)
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return bad("control character")
	}
	f := strings.SplitN(line, ":", 4)
	if len(f) < 3 {
		return bad("too few fields")
	}
	var r Reply
	var ok bool
	if r.ServerPort, r.ClientPort, ok = parsePair(f[0]); !ok {
		return bad("bad port pair")
	}
	switch typ := strings.Trim(f[1], " \t"); {
	case strings.EqualFold(typ, "ERROR"):
		// The error type is the rest of the line, colons and all.
		r.Error = strings.Trim(strings.Join(f[2:], ":"), " \t")
		if r.Error == "" {
			return bad("empty error type")
		}
	case strings.EqualFold(typ, "USERID"):
		if len(f) < 4 {
			return bad("too few fields")
		}
		opsys, cs, hasCharset := strings.Cut(f[2], ",")
		r.OS = strings.Trim(opsys, " \t")
		if hasCharset {
			if r.Charset = strings.Trim(cs, " \t"); r.Charset == "" {
				return bad("empty charset")
			}
		}
		r.UserID = strings.Trim(f[3], " \t")
		if r.OS == "" || r.UserID == "" {
			return bad("empty os or user-id")
		}
	default:
		return bad("unknown reply type")
	}
	return r, nil
}

// Query asks the identd at addr (host:port, normally clientIP:113) who owns
// the connection serverPort,clientPort, ports as seen from the identd's host
// per RFC 1413: the client's local port first, the receiver's port second.
// timeout (if > 0) bounds the whole exchange, dial included.
//
// Errors, all naming addr:
//   - an ERROR reply is returned parsed, with an error wrapping
//     ErrErrorReply;
//   - no usable answer wraps ErrNoAnswer: the connection closed (or was
//     reset) without a reply line, or the reply was empty, longer than
//     MaxLine, unparseable (then also ErrMalformed) or for another port
//     pair (also ErrMalformed). The Reply is then zero. A last line
//     without CRLF before the server closes is still accepted;
//   - timeout expiring, or ctx's deadline, wraps context.DeadlineExceeded
//     (never os.ErrDeadlineExceeded), and ctx cancelled wraps
//     context.Canceled, whatever I/O error they caused;
//   - a port outside 1..65535 wraps ErrInvalidPort, nothing is sent;
//   - a failed dial is the dialer's error (connection refused from a host
//     without an identd: errors.Is(err, syscall.ECONNREFUSED)).
func Query(ctx context.Context, addr string, serverPort, clientPort int, timeout time.Duration) (Reply, error) {
	if !validPort(serverPort) || !validPort(clientPort) {
		return Reply{}, fmt.Errorf("ident %s: %w: %d, %d", addr, ErrInvalidPort, serverPort, clientPort)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// ioFail reports an I/O error: a cancelled or expired context is the
	// real cause of whatever error the forced deadline produced, and any
	// other failure to exchange a line is the server not answering.
	ioFail := func(err error, what string) (Reply, error) {
		if ctx.Err() != nil {
			return Reply{}, fmt.Errorf("ident %s: %s: %w", addr, what, ctx.Err())
		}
		return Reply{}, fmt.Errorf("ident %s: %w: %s: %w", addr, ErrNoAnswer, what, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Reply{}, fmt.Errorf("ident %s: %w", addr, err)
	}
	defer c.Close()
	// Unblock reads and writes as soon as ctx ends, whether by deadline or
	// by the caller cancelling.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	if _, err := fmt.Fprintf(c, "%d, %d\r\n", serverPort, clientPort); err != nil {
		return ioFail(err, "sending request")
	}
	raw, err := bufio.NewReaderSize(c, MaxLine).ReadSlice('\n')
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ioFail(err, "reading reply")
	case errors.Is(err, bufio.ErrBufferFull):
		return ioFail(fmt.Errorf("reply longer than %d bytes", MaxLine), "reading reply")
	case len(raw) == 0:
		return ioFail(fmt.Errorf("closed without a reply: %w", err), "reading reply")
	case !errors.Is(err, io.EOF):
		// Reset in mid-line: RFC 1413 counts a reply without its end of
		// line as no reply.
		return ioFail(fmt.Errorf("reply cut short: %w", err), "reading reply")
	}
	// Here the line is complete, or the server closed after writing a line
	// without CRLF, which is tolerated.
	r, err := ParseReply(string(raw))
	if err != nil {
		return Reply{}, fmt.Errorf("ident %s: %w: %w", addr, ErrNoAnswer, err)
	}
	if r.ServerPort != serverPort || r.ClientPort != clientPort {
		return Reply{}, fmt.Errorf("ident %s: %w: %w: reply %q is for %d, %d, asked %d, %d",
			addr, ErrNoAnswer, ErrMalformed, trunc(r.String()), r.ServerPort, r.ClientPort, serverPort, clientPort)
	}
	if r.Error != "" {
		return r, fmt.Errorf("ident %s: %w: %s", addr, ErrErrorReply, r.Error)
	}
	return r, nil
}
