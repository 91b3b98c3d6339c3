package maildir

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Extract writes a Maildir read as tar into dst. Entries are named as the
// engine's archive API and the receiver's GET /maildir name them: the
// folder's own name first ("Maildir/new/1.x"); that first element is
// dropped. Files keep their modification times (a real MTA's delivery
// times are read from them). Entries that would land outside dst, links
// and devices are skipped: the archive comes from a container.
func Extract(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read Maildir archive: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		_, rel, _ := strings.Cut(name, string(filepath.Separator))
		if rel == "" || !filepath.IsLocal(rel) {
			if h.Typeflag == tar.TypeDir || rel == "" {
				if err := os.MkdirAll(dst, 0o755); err != nil {
					return err
				}
			}
			continue
		}
		p := filepath.Join(dst, rel)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
			if err := os.Chtimes(p, h.ModTime, h.ModTime); err != nil {
				return err
			}
		}
	}
}
