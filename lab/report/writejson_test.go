package report

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
)

// TestWriteJSONIsMarshalIndent: result.json written as a stream is, byte
// for byte, the document json.MarshalIndent makes of the whole result,
// for real runs' results and for one with no records.
func TestWriteJSONIsMarshalIndent(t *testing.T) {
	var results []*Result
	for _, name := range []string{"fast-result.json", "courier-1999-result.json"} {
		r, err := Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	empty := *results[0]
	empty.Messages, empty.Connections, empty.Queries = []MessageRecord{}, []ConnectionRecord{}, []QueryRecord{}
	results = append(results, &empty)
	for _, r := range results {
		want, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := r.WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			i := 0
			for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
				i++
			}
			t.Errorf("run %s (%d records): differs at byte %d: %q, want %q", r.RunID, len(r.Messages),
				i, got.Bytes()[max(0, i-40):min(got.Len(), i+40)], want[max(0, i-40):min(len(want), i+40)])
		}
	}
}
