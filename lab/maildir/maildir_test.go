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

// A message never replaces one already in new/ under the same name: the
// move is a link, which fails on an existing name, and the tmp/ file goes.
func TestMoveNewNeverReplaces(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(string(d), "tmp", "x")
	dst := filepath.Join(string(d), "new", "x")
	for _, f := range []struct{ path, data string }{{tmp, "second"}, {dst, "first"}} {
		if err := os.WriteFile(f.path, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := moveNew(tmp, dst); err == nil {
		t.Error("moveNew replaced a message in new/")
	}
	if got, _ := os.ReadFile(dst); string(got) != "first" {
		t.Errorf("new/x holds %q", got)
	}
	if err := os.Remove(dst); err != nil {
		t.Fatal(err)
	}
	if err := moveNew(tmp, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("tmp/x left behind: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "second" {
		t.Errorf("new/x holds %q", got)
	}
}
