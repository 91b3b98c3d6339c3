package receiver

import (
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// closeReasons maps each client address to the reason its ConnClose gave.
func closeReasons(evs []events.Event) map[string]string {
	hostOf := map[string]string{}
	out := map[string]string{}
	for _, e := range evs {
		switch e.Kind {
		case events.ConnOpen:
			hostOf[e.Conn] = e.Host
		case events.ConnClose:
			out[hostOf[e.Conn]] = e.Reason
		}
	}
	return out
}

// ConnClose says how each session ended: QUIT, the client hanging up, the
// server shutting down, or the client falling silent past the timeout.
func TestCloseReasons(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), nil)
	quit, quitAddr := l.client()
	hangup, hangupAddr := l.client()
	_, openAddr := l.client()
	if err := quit.Quit(); err != nil {
		t.Fatal(err)
	}
	hangup.Close()
	labtest.Events(t, l.log, events.ConnClose, 2)
	l.close() // the third session is still open
	got := closeReasons(l.log.Events())
	for addr, want := range map[string]string{quitAddr.String(): "quit", hangupAddr.String(): "client closed", openAddr.String(): "server closed"} {
		if got[addr] != want {
			t.Errorf("session from %s closed with %q, want %q", addr, got[addr], want)
		}
	}

	slow := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) { c.CommandTimeout = duration.Duration(50 * time.Millisecond) })
	_, idleAddr := slow.client()
	labtest.Events(t, slow.log, events.ConnClose, 1)
	if r := closeReasons(slow.log.Events())[idleAddr.String()]; r != "timeout" {
		t.Errorf("an idle session closed with %q, want timeout", r)
	}
}
