package identd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Reply is one parsed RFC 1413 reply. Exactly one of UserID (with OS) and
// Error is set.
type Reply struct {
	ServerPort, ClientPort int
	UserID, OS, Error      string
}

// String formats r as a reply line without the trailing CRLF.
func (r Reply) String() string {
	if r.Error != "" {
		return fmt.Sprintf("%d, %d : ERROR : %s", r.ServerPort, r.ClientPort, r.Error)
	}
	return fmt.Sprintf("%d, %d : USERID : %s : %s", r.ServerPort, r.ClientPort, r.OS, r.UserID)
}

// ParseReply parses "6193, 23 : USERID : UNIX : stjohns" or
// "6195, 23 : ERROR : NO-USER" (trailing CRLF allowed). Ports are not range
// checked because servers echo the bad ports of an INVALID-PORT reply and
// answer "0, 0" to garbage. The user-id is the rest of the line after the
// third colon, so it may itself contain colons (RFC 1413 allows any octet
// but NUL, CR and LF there).
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
		r.OS = strings.Trim(f[2], " \t")
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
// timeout (if > 0) bounds the whole exchange, dial included. An ERROR reply
// is returned parsed together with an error wrapping ErrErrorReply.
func Query(ctx context.Context, addr string, serverPort, clientPort int, timeout time.Duration) (Reply, error) {
	fail := func(err error) (Reply, error) {
		// A cancelled or expired context is the real cause of whatever
		// I/O error the forced deadline produced; report that instead.
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Reply{}, fmt.Errorf("ident %s: %w", addr, err)
	}
	if !validPort(serverPort) || !validPort(clientPort) {
		return Reply{}, fmt.Errorf("ident %s: %w: %d, %d", addr, ErrInvalidPort, serverPort, clientPort)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	// Unblock reads and writes as soon as ctx ends, whether by deadline or
	// by the caller cancelling.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	if _, err := fmt.Fprintf(c, "%d, %d\r\n", serverPort, clientPort); err != nil {
		return fail(err)
	}
	raw, err := bufio.NewReaderSize(c, MaxLine).ReadSlice('\n')
	if err != nil && (errors.Is(err, bufio.ErrBufferFull) || len(raw) == 0) {
		// A server that closes after writing a line without CRLF is
		// tolerated; an over-long or empty answer is not.
		return fail(fmt.Errorf("reading reply: %w", err))
	}
	r, err := ParseReply(string(raw))
	if err != nil {
		return fail(err)
	}
	if r.ServerPort != serverPort || r.ClientPort != clientPort {
		// An ERROR reply to a request the server could not parse has
		// "0, 0"; keep it so the caller sees the server's error.
		if r.Error == "" {
			return Reply{}, fmt.Errorf("ident %s: %w: reply is for %d, %d, asked %d, %d",
				addr, ErrMalformed, r.ServerPort, r.ClientPort, serverPort, clientPort)
		}
	}
	if r.Error != "" {
		return r, fmt.Errorf("ident %s: %w: %s", addr, ErrErrorReply, r.Error)
	}
	return r, nil
}
