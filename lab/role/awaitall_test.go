package role

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/topology"
)

// statusOf is the HTTP status GET /status answers on control, or 0 when
// nothing answers there.
func statusOf(control string) int {
	resp, err := http.Get("http://" + control + "/status")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postSpec gives the role awaiting on control its spec.
func postSpec(t *testing.T, control string, s Spec) {
	t.Helper()
	b, _ := json.Marshal(s)
	resp, err := http.Post("http://"+control+"/spec", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /spec on %s: %d, want 202", control, resp.StatusCode)
	}
}

// ended waits for AwaitAll's result; two minutes is a hang.
func ended(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("AwaitAll did not return two minutes after its context ended (a hang)")
		return nil
	}
}

// Two roles in one process (the sending host's sender and its identd on a
// swarm), each awaiting its spec on a control port of its own: each runs
// the role it is given there; the first's spec is kept where sendmail
// looks, the second's beside it named for its port, and the second's
// spool likewise, so that the two never write one file. Ending the
// context ends both.
func TestAwaitAllServesEachRole(t *testing.T) {
	ctl1, ctl2 := freeAddr(t), freeAddr(t)
	svc1, svc2 := freeAddr(t), freeAddr(t)
	_, port2, _ := net.SplitHostPort(ctl2)
	dir := t.TempDir()
	specPath := filepath.Join(dir, "etc", "role.json")
	spool := filepath.Join(dir, "spool", "events.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- AwaitAll(ctx, []string{ctl1, ctl2}, specPath, out) }()

	for _, c := range []string{ctl1, ctl2} {
		labtest.Until(t, "the control port "+c+" awaiting a spec", func() bool { return statusOf(c) == http.StatusServiceUnavailable })
	}
	users := map[string]string{ctl1: "first", ctl2: "second"}
	postSpec(t, ctl1, Spec{Role: topology.Identd, Listen: svc1, Spool: spool, Identd: &identd.Config{User: users[ctl1]}})
	postSpec(t, ctl2, Spec{Role: topology.Identd, Listen: svc2, Spool: spool, Identd: &identd.Config{User: users[ctl2]}})
	labtest.Until(t, "both identd roles ready", func() bool {
		return strings.Count(out.String(), ReadyLine(topology.Identd)) == 2
	})

	// Each answers as its own spec says, on its own port.
	for svc, user := range map[string]string{svc1: users[ctl1], svc2: users[ctl2]} {
		if rep, err := identd.Query(context.Background(), svc, 4000, 25, 30*time.Second); err != nil || rep.UserID != user {
			t.Errorf("identd on %s: reply %+v, %v; want user %q", svc, rep, err, user)
		}
	}
	// Each control port serves its own role's log: one query each.
	for _, c := range []string{ctl1, ctl2} {
		resp, err := http.Get("http://" + c + "/events")
		if err != nil {
			t.Fatal(err)
		}
		evs, err := events.ReadJSONL(resp.Body)
		resp.Body.Close()
		if err != nil || len(evs) != 1 || evs[0].Kind != events.IdentQuery || !strings.Contains(evs[0].Result, users[c]) {
			t.Errorf("GET /events on %s: %+v, %v; want one ident_query answered %q", c, evs, err, users[c])
		}
	}

	// The specs as each role took them: the first where sendmail looks,
	// the second beside it, named for its port, with its spool apart.
	spool2 := filepath.Join(dir, "spool", "events-"+port2+".jsonl")
	for _, w := range []struct {
		path, control, spool, user string
	}{
		{specPath, ctl1, spool, users[ctl1]},
		{filepath.Join(dir, "etc", "role-"+port2+".json"), ctl2, spool2, users[ctl2]},
	} {
		kept, err := ReadSpec(w.path)
		if err != nil {
			t.Errorf("spec of the role on %s: %v", w.control, err)
			continue
		}
		if kept.Control != w.control || kept.Spool != w.spool || kept.Identd == nil || kept.Identd.User != w.user {
			t.Errorf("%s: control %q spool %q identd %+v; want control %q spool %q user %q",
				w.path, kept.Control, kept.Spool, kept.Identd, w.control, w.spool, w.user)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "etc", "*")); len(files) != 2 {
		t.Errorf("spec files %v, want two", files)
	}
	// Each spool holds its own role's events, and only those.
	for path, user := range map[string]string{spool: users[ctl1], spool2: users[ctl2]} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("spool: %v", err)
			continue
		}
		evs, err := events.ReadJSONL(bytes.NewReader(b))
		if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Result, user) {
			t.Errorf("spool %s: %+v, %v; want the one query answered %q", path, evs, err, user)
		}
	}

	cancel()
	if err := ended(t, done); err != nil {
		t.Errorf("AwaitAll: %v", err)
	}
}

// The first role to fail ends them all, and AwaitAll says why: the
// second cannot listen where its spec says (the port is taken), so the
// first, running, is ended too.
func TestAwaitAllFirstFailureEndsAll(t *testing.T) {
	ctl1, ctl2, svc1 := freeAddr(t), freeAddr(t), freeAddr(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- AwaitAll(context.Background(), []string{ctl1, ctl2}, filepath.Join(dir, "role.json"), out)
	}()
	for _, c := range []string{ctl1, ctl2} {
		labtest.Until(t, "the control port "+c+" awaiting a spec", func() bool { return statusOf(c) == http.StatusServiceUnavailable })
	}
	postSpec(t, ctl1, Spec{Role: topology.Identd, Listen: svc1, Identd: &identd.Config{User: "first"}})
	labtest.Until(t, "the first role ready", func() bool { return strings.Contains(out.String(), ReadyLine(topology.Identd)) })
	postSpec(t, ctl2, Spec{Role: topology.Identd, Listen: taken.Addr().String(), Identd: &identd.Config{User: "second"}})
	err = ended(t, done)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("AwaitAll: %v, want the second role's listen error", err)
	}
	if code := statusOf(ctl1); code != 0 {
		t.Errorf("the first role's control port still answers (%d) after AwaitAll returned", code)
	}
}

// A control address without a port is refused before anything is given
// a spec.
func TestAwaitAllBadControl(t *testing.T) {
	err := AwaitAll(context.Background(), []string{freeAddr(t), "no-port"}, filepath.Join(t.TempDir(), "role.json"), &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), `control port "no-port"`) {
		t.Errorf("AwaitAll: %v, want the bad control port named", err)
	}
}

// suffixed puts the suffix before the extension, and at the end of a
// name that has none.
func TestSuffixed(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/etc/smtplab/role.json", "/etc/smtplab/role-8113.json"},
		{"/var/spool/smtplab/events.jsonl", "/var/spool/smtplab/events-8113.jsonl"},
		{"/var/spool/events", "/var/spool/events-8113"},
		{"/a.b/events", "/a.b/events-8113"},
	} {
		if got := suffixed(tc.path, "8113"); got != tc.want {
			t.Errorf("suffixed(%q): %q, want %q", tc.path, got, tc.want)
		}
	}
}
