package events

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLogRoundTrip(t *testing.T) {
	l := NewLog("dns")
	l.Add(Event{Kind: Query, Name: "a.example", QType: "A", Duration: time.Millisecond})
	l.Add(Event{Kind: Query, Name: "b.example", QType: "PTR"})
	l.Add(Event{Kind: ConnOpen, Conn: "c1"})
	if c := l.Counts(); c[Query] != 2 || c[ConnOpen] != 1 {
		t.Errorf("counts %v", c)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := ReadJSONL(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Role != "dns" || got[0].Name != "a.example" || got[0].Duration != time.Millisecond || got[0].Time.IsZero() {
		t.Errorf("read back %+v", got)
	}
	resp2, err := srv.Client().Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if !strings.Contains(string(b), `"dns_query":2`) {
		t.Errorf("status %s", b)
	}
}

func TestReadJSONLNamesBadLine(t *testing.T) {
	var buf bytes.Buffer
	WriteJSONL(&buf, []Event{{Kind: Query}})
	buf.WriteString("{not json\n")
	_, err := ReadJSONL(&buf)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v, want one naming line 2", err)
	}
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-28T10:00:00Z","role":"dns","kind":"dns_query"}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ReadJSONL(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteJSONL(&out, evs); err != nil {
			t.Fatal(err)
		}
		again, err := ReadJSONL(&out)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("round trip: %v, %d vs %d", err, len(again), len(evs))
		}
	})
}

// Events come back in order across the log's internal blocks.
func TestManyEventsInOrder(t *testing.T) {
	l := NewLog("r")
	const n = 3*chunkBytes/50 + 17 // a line is more than 50 bytes
	for i := 0; i < n; i++ {
		l.Add(Event{Kind: Delivered, Seq: i})
	}
	if len(l.chunks) < 3 {
		t.Fatalf("%d blocks, want the events over 3 or more", len(l.chunks))
	}
	evs := l.Events()
	if len(evs) != n || l.Counts()[Delivered] != n {
		t.Fatalf("%d events, count %d, want %d", len(evs), l.Counts()[Delivered], n)
	}
	for i, e := range evs {
		if e.Seq != i {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}
