package role

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/topology"
)

// A container started with --await answers 503 until it is given a spec,
// refuses a bad one with the reason, then runs the role it was given on
// the same control address, and keeps the spec where sendmail looks.
func TestAwaitThenRun(t *testing.T) {
	ctl, svc := freeAddr(t), freeAddr(t)
	specPath := filepath.Join(t.TempDir(), "etc", "role.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Await(ctx, ctl, specPath, out) }()
	base := "http://" + ctl
	var code int
	for i := 0; i < 500; i++ {
		if resp, err := http.Get(base + "/status"); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Fatalf("GET /status while awaiting: %d, want 503", code)
	}
	resp, err := http.Post(base+"/spec", "application/json", strings.NewReader(`{"role":"identd","listn":":113"}`))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "listn") {
		t.Fatalf("bad spec: %d %q, want 400 naming the unknown field", resp.StatusCode, msg)
	}
	spec, _ := json.Marshal(Spec{Role: topology.Identd, Listen: svc, Identd: &identd.Config{User: "courier"}})
	resp, err = http.Post(base+"/spec", "application/json", bytes.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /spec: %d, want 202", resp.StatusCode)
	}
	for !strings.Contains(out.String(), ReadyLine(topology.Identd)) {
		select {
		case err := <-done:
			t.Fatalf("role ended: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if rep, err := identd.Query(context.Background(), svc, 4000, 25, 5*time.Second); err != nil || rep.UserID != "courier" {
		t.Fatalf("ident reply %+v, %v", rep, err)
	}
	resp, err = http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /status once running: %d", resp.StatusCode)
	}
	kept, err := ReadSpec(specPath)
	if err != nil || kept.Role != topology.Identd || kept.Control != ctl {
		t.Errorf("kept spec %+v, %v", kept, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("role: %v", err)
	}
}

// GET /maildir's tar names entries as the engine's archive API does: the
// folder's base name first, then the Maildir's own layout.
func TestTarDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "new", "1.x"), []byte("Message-ID: <a@b>\n\nhi\n"), 0o600)
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	var body string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "Maildir/new/1.x" {
			b, _ := io.ReadAll(tr)
			body = string(b)
		}
	}
	sort.Strings(names)
	want := []string{"Maildir/", "Maildir/cur/", "Maildir/new/", "Maildir/new/1.x", "Maildir/tmp/"}
	if strings.Join(names, " ") != strings.Join(want, " ") || !strings.Contains(body, "<a@b>") {
		t.Errorf("entries %v (body %q), want %v", names, body, want)
	}
}
