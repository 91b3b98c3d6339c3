package role

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/topology"
)

func TestReadSpecRefusesUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "role.json")
	os.WriteFile(p, []byte(`{"role":"identd","identd":{"user":"u"},"colour":"red"}`), 0o644)
	if _, err := ReadSpec(p); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("error %v, want one naming the unknown field", err)
	}
}

func TestRunWithoutConfig(t *testing.T) {
	err := Run(context.Background(), Spec{Role: topology.Receiver}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "receiver") {
		t.Errorf("error %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A role serves its protocol and its control port, then prints its ready
// line; its events are read back over the control port.
func TestRunIdentdRole(t *testing.T) {
	svc := freeAddr(t)
	ctl := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Spec{Role: topology.Identd, Listen: svc, Control: ctl, Identd: &identd.Config{User: "courier"}}, out)
	}()
	for !strings.Contains(out.String(), ReadyLine(topology.Identd)) {
		select {
		case err := <-done:
			t.Fatalf("role ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	rep, err := identd.Query(context.Background(), svc, 4000, 25, 5*time.Second)
	if err != nil || rep.UserID != "courier" {
		t.Fatalf("ident reply %+v, %v", rep, err)
	}
	resp, err := http.Get("http://" + ctl + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var counts map[string]int
	json.NewDecoder(resp.Body).Decode(&counts)
	resp.Body.Close()
	if counts["ident_query"] != 1 {
		t.Errorf("status %v, want one ident_query", counts)
	}
	mresp, err := http.Get("http://" + ctl + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if want := `smtplab_events_total{kind="ident_query",role="identd"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q:\n%s", want, metrics)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
