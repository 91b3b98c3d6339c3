package maildir

import (
	"fmt"
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
// move (a rename that does not replace, or a link) fails on an existing
// name, and the tmp/ file goes once moved.
func TestMoveNewNeverReplaces(t *testing.T) {
	testMoveNewNeverReplaces(t)
}

// The same where the system has no RENAME_NOREPLACE: link, then unlink.
func TestMoveNewNeverReplacesByLink(t *testing.T) {
	forceLink(t)
	testMoveNewNeverReplaces(t)
}

func testMoveNewNeverReplaces(t *testing.T) {
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

// A failed write leaves nothing in tmp/ or new/ and says which file.
func TestDeliverFailsCleanly(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(string(d), "tmp")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Deliver([]byte("Message-ID: <f@x>\r\n\r\n"), "host", true)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(string(d), "tmp")) {
		t.Errorf("Deliver without tmp/: %v", err)
	}
	if n, _ := os.ReadDir(filepath.Join(string(d), "new")); len(n) != 0 {
		t.Errorf("%d files in new/", len(n))
	}
}

// Many deliveries at once, with and without fsync: each one file in new/
// with its own bytes, none left in tmp/, and the same by link and unlink.
func TestDeliverConcurrent(t *testing.T) {
	for _, byLink := range []bool{false, true} {
		for _, sync := range []bool{true, false} {
			t.Run(fmt.Sprintf("link=%v,sync=%v", byLink, sync), func(t *testing.T) {
				if byLink {
					forceLink(t)
				}
				d := Dir(t.TempDir())
				if err := d.Create(); err != nil {
					t.Fatal(err)
				}
				const n = 200
				paths := make([]string, n)
				errs := make(chan error, n)
				for i := range n {
					go func() {
						p, err := d.Deliver([]byte(fmt.Sprintf("Message-ID: <%d@x>\n\nbody %d\n", i, i)), "host", sync)
						paths[i] = p
						errs <- err
					}()
				}
				for range n {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				for i, p := range paths {
					if got, err := os.ReadFile(p); err != nil || !strings.HasSuffix(string(got), fmt.Sprintf("body %d\n", i)) {
						t.Errorf("message %d at %s: %q, %v", i, p, got, err)
					}
				}
				if ents, _ := os.ReadDir(filepath.Join(string(d), "new")); len(ents) != n {
					t.Errorf("%d files in new/, want %d", len(ents), n)
				}
				if ents, _ := os.ReadDir(filepath.Join(string(d), "tmp")); len(ents) != 0 {
					t.Errorf("%d files left in tmp/", len(ents))
				}
			})
		}
	}
}

// A path Deliver makes inside the Maildir is the one filepath.Join makes.
func TestPrefixIsJoin(t *testing.T) {
	for _, d := range []string{"", ".", "/", "//", "a", "a/", "./a//b/../c/", "/m/Maildir", "../x", ".."} {
		if got, want := Dir(d).prefix()+"new/1.M2P3Q4.host", filepath.Join(d, "new", "1.M2P3Q4.host"); got != want {
			t.Errorf("Dir(%q): %q, filepath.Join gives %q", d, got, want)
		}
	}
}
