package receiver

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestMemoryFlatInMessages: with its log spooled (as every role's is,
// lab/role), the receiver's memory does not grow with the messages it has
// delivered: the live heap after N messages over 4 sessions is within
// 20% (and 1 MB) of what it was after N/10. SMTPLAB_MEM_MESSAGES sets N
// (2,000 by default; docs/PERFORMANCE.md has 20,000).
func TestMemoryFlatInMessages(t *testing.T) {
	n := 2_000
	if v := os.Getenv("SMTPLAB_MEM_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	dir := t.TempDir()
	cfg := Config{
		Hostname:  hostname,
		Admission: Admission{MaxSessions: 4},
		Delivery: Delivery{LocalDomains: []string{".example.com"}, Account: account,
			Maildir: filepath.Join(dir, "Maildir"), NoFsync: true},
	}
	log := events.NewLog("receiver")
	if err := log.Spool(filepath.Join(dir, "events.jsonl")); err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cs, err := dialSenders(a.String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer quitAll(cs)
	if err := sendAll(cs, n/10); err != nil {
		t.Fatal(err)
	}
	early := labtest.LiveHeap()
	if err := sendAll(cs, n-n/10); err != nil {
		t.Fatal(err)
	}
	late := labtest.LiveHeap()
	t.Logf("live heap after %d messages %d KB, after %d %d KB", n/10, early>>10, n, late>>10)
	if late > early+early/5+1<<20 {
		t.Errorf("live heap grew from %d KB after %d messages to %d KB after %d", early>>10, n/10, late>>10, n)
	}
	if got := log.Counts()[events.Delivered]; got != n {
		t.Errorf("%d Delivered events, want %d", got, n)
	}
}
