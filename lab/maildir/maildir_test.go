package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeliverAndList(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"<a@x>", "<b@x>", "<a@x>"} {
		if _, err := d.Deliver([]byte("Message-ID: "+id+"\r\nSubject: s\r\n\r\nbody\r\n"), "host", true); err != nil {
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

// A host with '/' or ':' would make a path or an info part of the unique
// name; the spec has them written \057 and \072.
func TestDeliverHostInName(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	p, err := d.Deliver([]byte("Message-ID: <h@x>\r\n\r\n"), "a/b:c", true)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p) != filepath.Join(string(d), "new") {
		t.Errorf("delivered to %s, not in new/", p)
	}
	if name := filepath.Base(p); !strings.HasSuffix(name, `.a\057b\072c`) {
		t.Errorf("unique name %q", name)
	}
}
