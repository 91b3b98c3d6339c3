package events

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

// appendJSON writes what json.Marshal writes, byte for byte, for every
// field filled and for strings that need escaping (HTML-safe escapes,
// control bytes, invalid UTF-8, U+2028).
func TestAppendJSONIsMarshal(t *testing.T) {
	full := Event{Time: time.Date(2026, 12, 7, 3, 22, 1, 123456789, time.FixedZone("x", 3600)), Role: topology.Receiver,
		Kind: Check, Conn: "r1", Host: "127.0.0.1:4", QueueID: "q", MessageID: "<1@x>", From: "a@b", Rcpts: []string{"c@d", "e@f"},
		Check: "dnsbl", Name: "n", QType: "A", Result: "NXDOMAIN", Code: 550, Enhanced: "5.7.1", Error: "e", Reason: "r",
		Path: "/p", Count: -3, Duration: 5, Seq: 6, SizeIn: 7, SizeOut: 8, QueueWait: 9, OnLine: 10, Upstream: 11,
		FaultName: "drop", Via: []string{"1.2.3.4:5#6"}}
	for _, e := range []Event{
		{},
		full,
		{Kind: Delivered, Error: "<b>&\"\\\x00\x1f\x7f\xff é \u2028\u2029"},
		{Kind: Received, Rcpts: []string{}, Via: []string{""}},
	} {
		got, err := marshalLine(nil, &e)
		want, werr := json.Marshal(&e)
		if err != nil || werr != nil || !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("appendJSON gave\n%s (%v)\njson.Marshal\n%s (%v)", got, err, want, werr)
		}
	}
	// A year json.Marshal refuses is refused, not written.
	if _, err := marshalLine(nil, &Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a time outside RFC 3339 was written")
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add(int64(1796507700086873992), "r1", "<1@x>", "a@b.example", "/maildir/new/x", int64(250), "<&>\"\\\x00\xff\u2028")
	f.Add(int64(0), "", "", "", "", int64(0), "")
	f.Fuzz(func(t *testing.T, ns int64, conn, msgID, rcpt, path string, n int64, text string) {
		e := Event{Time: time.Unix(0, ns), Role: topology.Role(text), Kind: Kind(conn), Conn: conn, MessageID: msgID,
			From: text, Rcpts: []string{rcpt, text}, Name: text, Code: int(n), Error: text, Path: path, Count: int(-n),
			Duration: time.Duration(n), Upstream: time.Duration(ns), FaultName: text, Via: []string{path}}
		want, werr := json.Marshal(&e)
		got, err := marshalLine(nil, &e)
		if (err == nil) != (werr == nil) || err == nil && !bytes.Equal(got, append(want, '\n')) {
			t.Fatalf("appendJSON gave\n%q (%v)\njson.Marshal\n%q (%v)", got, err, want, werr)
		}
	})
}

// BenchmarkAppendJSON against json.Marshal, for a receiver's Delivered.
func BenchmarkAppendJSON(b *testing.B) {
	e := Event{Time: time.Now(), Role: topology.Receiver, Kind: Delivered, MessageID: "<1796507700086873992.1653.1@sender.lab.example.net>",
		Rcpts: []string{"recipient-foo-20@20.foo.example.com"}, Path: "/maildir/new/1796507700.M1P2.receiver", Conn: "r20"}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = marshalLine(buf[:0], &e)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(&e)
		}
	})
}
