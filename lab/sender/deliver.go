package sender

// One connection's life and what each reply does to the queue, as the
// child processes of Courier's module.esmtp do it (esmtpchild and
// sendesmtp in courier/module.esmtp/esmtpclient.c in Courier's source):
// find the servers, take the first that greets, then deliver every
// message the scheduler hands the connection.

import (
	"errors"
	"net"
	"strconv"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
)

// open finds the servers for j's host (its static route, else MX and A)
// and opens a session with the first that greets. Like Courier, a 5xx
// greeting or HELO ends the search (permanent); other failures move on to
// the next server. When none greets, err is the last server's failure and
// mta that server's address if the connection was made ("" when it was
// refused or never answered, or no server was found).
func (s *Sender) open(j *job, wrap func(net.Conn) net.Conn) (c *smtpConn, mta string, err error) {
	addrs := []string{j.relay}
	if j.relay == "" {
		if addrs, err = s.resolveMX(s.ctx, j.host); err != nil {
			return nil, "", err
		}
	}
	for _, a := range addrs {
		c, err = dialSMTP(s.ctx, a, s.cfg.Hostname, s.cfg.timeouts(), wrap)
		if err == nil {
			return c, "", nil
		}
		mta = a
		if h, _, serr := net.SplitHostPort(a); serr == nil {
			mta = h
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			mta = "" // refused, unreachable or unanswered: no server reached
		}
		if permanent(err) {
			break
		}
	}
	return nil, mta, err
}

// connection is one SMTP connection's life: resolve and dial, then
// deliver the first job and every job the scheduler hands it, until it
// has none. The slot is held while the DNS is asked, as Courier's esmtp
// child holds its delivery slot, and given back only once the connection
// is closed and its ConnClose logged.
func (s *Sender) connection(w *worker, first *job) {
	defer s.sched.release(w)
	n := s.conns.Add(1)
	id := "s" + strconv.FormatInt(n, 10)
	c, mta, err := s.open(first, s.overLink(int(n), id, first.host))
	if err != nil && s.ctx.Err() != nil {
		// Close cut the dial short: no try was made, and the queue keeps
		// the message for the next start. Nothing is logged after Close.
		return
	}
	if err != nil {
		first.attempt++ // a refused connection or greeting is a try too
		s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Reason: "connect: " + err.Error()})
		if permanent(err) {
			s.log.Add(attemptEvent(first, id, "permanent", err))
			s.fail(first, failuresOf(first, mta, err))
			return
		}
		s.retry(first, id, mta, err)
		return
	}
	s.log.Add(events.Event{Kind: events.ConnOpen, Conn: id, Host: first.host})
	count, reason := 0, ""
	for j := first; ; {
		ok := s.deliver(c, id, j)
		if !ok {
			reason = "broken"
			c.close()
			break
		}
		count++
		if s.cfg.MaxPerConnection > 0 && count >= s.cfg.MaxPerConnection {
			reason = "cap" // the next message for this host gets a fresh session
			c.quit()
			break
		}
		var why string
		if j, why = s.sched.next(w); j == nil {
			reason = why
			c.quit()
			break
		}
	}
	s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Count: count, Reason: reason})
}

// permanent reports a 5xx reply or a permanent routing failure.
func permanent(err error) bool {
	var r *Reply
	var re *routeError
	return errors.As(err, &r) && r.Permanent() || errors.As(err, &re) && re.permanent
}

// code is the reply code err carries, 0 when no server answered.
func code(err error) int {
	if r := replyOf(err); r != nil {
		return r.Code
	}
	return 0
}

// failuresOf fails every recipient of j for err, which the server mta
// gave ("" when no server did).
func failuresOf(j *job, mta string, err error) []failure {
	out := make([]failure, len(j.rcpts))
	for i, r := range j.rcpts {
		out[i] = failure{rcpt: r, host: j.host, mta: mta, code: code(err), err: err}
	}
	return out
}

// attemptEvent is the Attempt event of a try of j on conn that came to
// result, with the peer's reply that decided it, placed as events.Attempt
// says. why is that reply for "ok"; for a failure it is the error, which
// carries the reply when a server gave one.
func attemptEvent(j *job, conn, result string, why error) events.Event {
	e := events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Result: result}
	r := replyOf(why)
	if r != nil {
		e.Code, e.Enhanced = r.Code, r.Enhanced()
	}
	switch {
	case result == "ok":
		if r != nil {
			e.Reason = r.Error()
		}
	case r == nil:
		e.Error = "no reply: " + why.Error()
	default:
		e.Error = why.Error()
	}
	return e
}

// deliver sends one job in one transaction. It returns false when the
// connection can no longer be used. Every recipient of j ends up done,
// failed or handed to retry, whatever the receiver does.
func (s *Sender) deliver(c *smtpConn, conn string, j *job) bool {
	j.attempt++
	text, err := s.q.Text(j.env.ID)
	if err != nil {
		s.fail(j, failuresOf(j, "", err))
		return true
	}
	o := c.transaction(j.env.From, j.rcpts, text)

	var perm []failure
	var later []string
	var laterErr error
	// refused sorts recipients refused by err: 5xx fails them, else they
	// are tried again.
	refused := func(rcpts []string, err error) {
		if len(rcpts) == 0 {
			return
		}
		if !permanent(err) {
			later, laterErr = append(later, rcpts...), err
			return
		}
		s.log.Add(attemptEvent(j, conn, "permanent", err))
		for _, r := range rcpts {
			perm = append(perm, failure{rcpt: r, host: j.host, mta: c.remoteHost(), code: code(err), err: err})
		}
	}
	if o.mail != nil {
		refused(j.rcpts, o.mail)
	} else {
		var accepted []string
		for i, r := range j.rcpts {
			switch {
			case i >= o.answered:
				// The connection broke before this RCPT was answered.
				later, laterErr = append(later, r), o.broken
			case o.rcpt[i] != nil:
				refused([]string{r}, o.rcpt[i])
			default:
				accepted = append(accepted, r)
			}
		}
		switch {
		case o.sent:
			s.log.Add(attemptEvent(j, conn, "ok", o.done))
			if _, derr := s.q.Done(j.env.ID, accepted); derr != nil {
				// The receiver has the message; failing to record it would
				// send it twice. Say so loudly, and never load it again in
				// this process (s.bad): a restart would resend it, and the
				// Failed event says why.
				s.mu.Lock()
				s.bad[j.env.ID] = true
				s.mu.Unlock()
				s.log.Add(events.Event{Kind: events.Failed, QueueID: j.env.ID, MessageID: j.env.MessageID, Rcpts: accepted, Error: "delivered but not marked done: " + derr.Error()})
			}
			s.log.Add(events.Event{Kind: events.Sent, QueueID: j.env.ID, MessageID: j.env.MessageID, Conn: conn, Host: j.host, Rcpts: accepted})
			s.finish(j.env.ID, len(accepted))
		case o.data != nil:
			refused(accepted, o.data)
		default:
			// Not sent: the connection broke, or no recipient was taken.
			// A refusal already recorded (a 450 at RCPT) stays the reason:
			// it is the peer's own word, which a DSN must carry.
			later = append(later, accepted...)
			if o.broken != nil || laterErr == nil {
				laterErr = o.broken
			}
		}
	}
	if len(perm) > 0 {
		s.fail(j, perm)
	}
	if len(later) > 0 {
		rest := *j // its tries so far, and the last that reached a server
		rest.rcpts = later
		s.retry(&rest, conn, c.remoteHost(), laterErr)
	}
	if o.broken != nil {
		return false
	}
	if !o.sent {
		return c.reset() == nil
	}
	return true
}

// overLink wraps connection number n (id, to host) in the modelled SMTP
// link, logging what the link does to it; nil without a link.
func (s *Sender) overLink(n int, id, host string) func(net.Conn) net.Conn {
	if s.link == nil {
		return nil
	}
	return func(nc net.Conn) net.Conn {
		return s.link.Wrap(nc, n, func(f line.Fault) {
			s.log.Add(events.Event{Kind: events.LinkFault, FaultName: f.Kind, Duration: f.Wait, Count: f.Bytes, Conn: id, Host: host})
		})
	}
}
