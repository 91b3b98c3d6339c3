// Package labtest holds what the lab's tests share: one rule for a test
// that needs a tool or service (skip where it is missing, fail where the
// environment demands it, as CI does), and one way to wait for something
// to happen without asserting how long it takes.
package labtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// The variables that turn a skip into a failure; CI sets them all.
const (
	DockerEnv      = "SMTPLAB_REQUIRE_DOCKER"      // a Docker engine and docker-compose
	DebootstrapEnv = "SMTPLAB_REQUIRE_DEBOOTSTRAP" // debootstrap, which builds the real MTAs' images
	ChromiumEnv    = "SMTPLAB_REQUIRE_CHROMIUM"    // headless chromium, which checks the HTML report
)

// Require skips t because what is missing (err says why), or fails it when
// the environment variable env is set: CI sets it, so a test it must run
// never skips there.
func Require(t testing.TB, env, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(env) != "" {
		t.Fatalf("%s is set and %s is missing: %v", env, what, err)
	}
	t.Skipf("%s is missing, skipping (set %s=1 to make this a failure): %v", what, env, err)
}

// Tool is the path of the program name, or Require's skip or failure.
func Tool(t testing.TB, name, env string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	Require(t, env, name+" (apt-get install "+name+")", err)
	return path
}

// PathWithout is $PATH less every folder holding a program named tool:
// for running a command as on a machine without it (no debootstrap, no
// go).
func PathWithout(tool string) string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, tool)); err != nil {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// Until polls cond until it holds. It gives up, failing t with what, only
// after two minutes: a hang, not a speed, so a test asserts that
// something happens, never how fast, and a busy machine passes it.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited two minutes for %s (a hang, not a timing assertion)", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Events waits until log holds at least n events of kind and returns them.
func Events(t testing.TB, log *events.Log, kind events.Kind, n int) []events.Event {
	t.Helper()
	var got []events.Event
	Until(t, fmt.Sprintf("%d %s events", n, kind), func() bool {
		got = got[:0]
		for _, e := range log.Events() {
			if e.Kind == kind {
				got = append(got, e)
			}
		}
		return len(got) >= n
	})
	return got
}

// LiveHeap is the live heap, in bytes, once the garbage collector has run
// twice: what a test of memory flat in the work done compares.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Hosts are what a run's events say of its sending hosts (sender.replicas).
type Hosts struct {
	Clients     map[string]int // the receiver's connections by client address
	IdentOK     map[string]int // IDENT checks answered, by the address asked
	SenderConns map[string]int // the sender's connections by host ("sender-2" of "sender-2/s5")
	Delivered   int            // the receiver's Delivered events
}

// SendingHosts reads evs for Hosts.
func SendingHosts(evs []events.Event) Hosts {
	h := Hosts{Clients: map[string]int{}, IdentOK: map[string]int{}, SenderConns: map[string]int{}}
	for _, e := range evs {
		switch {
		case e.Role == topology.Receiver && e.Kind == events.ConnOpen:
			host, _, _ := strings.Cut(e.Host, ":")
			h.Clients[host]++
		case e.Role == topology.Receiver && e.Kind == events.Check && e.Check == "ident" && e.Error == "" && e.Result != "":
			host, _, _ := strings.Cut(e.Name, ":")
			h.IdentOK[host]++
		case e.Role == topology.Sender && e.Kind == events.ConnOpen:
			host, _, _ := strings.Cut(e.Conn, "/")
			h.SenderConns[host]++
		case e.Role == topology.Receiver && e.Kind == events.Delivered:
			h.Delivered++
		}
	}
	return h
}

// CheckSendingHosts fails t unless evs show n sending hosts, each
// opening perHost connections to the receiver, each of whose IDENT query
// was answered at the address it came from, and the sender's
// connections named for hosts sender-1 to sender-n, perHost each.
func CheckSendingHosts(t testing.TB, evs []events.Event, n, perHost int) Hosts {
	t.Helper()
	h := SendingHosts(evs)
	if len(h.Clients) != n {
		t.Errorf("the receiver saw connections from %v, want %d sending hosts", h.Clients, n)
	}
	for host, c := range h.Clients {
		if c != perHost || h.IdentOK[host] != c {
			t.Errorf("host %s: %d connections (want %d), %d IDENT answers from it (want one each)", host, c, perHost, h.IdentOK[host])
		}
	}
	for k := 1; k <= n; k++ {
		if name := fmt.Sprintf("sender-%d", k); h.SenderConns[name] != perHost {
			t.Errorf("sender connections by host %v, want %d from %s", h.SenderConns, perHost, name)
		}
	}
	if len(h.SenderConns) != n {
		t.Errorf("sender connections by host %v, want %d hosts", h.SenderConns, n)
	}
	return h
}

// Serve listens on a loopback port until t ends and hands each
// connection to handle on its own goroutine (handle closes it): the raw
// server of a test that must say exactly what a peer sends. It returns the
// address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
