package maildir

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExtract(t *testing.T) {
	mt := time.Date(1999, 6, 1, 12, 0, 0, 123456789, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "Maildir/", Typeflag: tar.TypeDir, Mode: 0o700}, "")
	for _, d := range []string{"tmp", "new", "cur"} {
		add(&tar.Header{Name: "Maildir/" + d + "/", Typeflag: tar.TypeDir, Mode: 0o700}, "")
	}
	add(&tar.Header{Name: "Maildir/new/1.x", Typeflag: tar.TypeReg, Mode: 0o600, ModTime: mt}, "Message-ID: <a@b>\n\nhi\n")
	add(&tar.Header{Name: "Maildir/../../escape", Typeflag: tar.TypeReg, Mode: 0o600}, "no")
	add(&tar.Header{Name: "Maildir/new/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "")
	tw.Close()

	dst := filepath.Join(t.TempDir(), "out")
	if err := Extract(&buf, dst); err != nil {
		t.Fatal(err)
	}
	msgs, err := Dir(dst).List()
	if err != nil || len(msgs) != 1 || msgs[0].MessageID != "<a@b>" {
		t.Fatalf("List = %+v, %v", msgs, err)
	}
	st, err := os.Stat(filepath.Join(dst, "new", "1.x"))
	if err != nil || !st.ModTime().Equal(mt) {
		t.Errorf("mtime %v (%v), want %v to the nanosecond", st.ModTime(), err, mt)
	}
	for _, p := range []string{filepath.Join(filepath.Dir(dst), "escape"), filepath.Join(dst, "..", "..", "escape"), filepath.Join(dst, "new", "link")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if err := Extract(bytes.NewReader([]byte("not a tar archive at all, but long enough to be read as a header block........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................")), t.TempDir()); err == nil {
		t.Error("garbage extracted without an error")
	}
}
