package maildir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDeliverAndList(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"<a@x>", "<b@x>", "<a@x>"} {
		if _, err := d.Deliver([]byte("Message-ID: "+id+"\r\nSubject: s\r\n\r\nbody\r\n"), "host"); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range msgs {
		count[m.MessageID]++
	}
	if len(msgs) != 3 || count["<a@x>"] != 2 || count["<b@x>"] != 1 {
		t.Errorf("listed %v", count)
	}
	if tmp, _ := os.ReadDir(filepath.Join(string(d), "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp/", len(tmp))
	}
}
