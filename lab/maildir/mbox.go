package maildir

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// An mbox is the other mailbox a receiver the lab knows nothing of may
// deliver to (receiver.evidence mbox): every message after a "From "
// separator line (RFC 4155), body lines that began "From " written as
// ">From " (mboxrd: one '>' more on any line of '>'s before "From ").

// fromQuoted is a body line as mboxrd writes it: '>'s, then "From ".
var fromQuoted = regexp.MustCompile(`^>+From `)

// asctime is the date of a "From " line (RFC 4155: UTC, asctime format).
const asctime = "Mon Jan 2 15:04:05 2006"

// SplitMbox reads the mbox r and calls each with every message, its line
// ends LF, its quoted "From " lines unquoted, and the time its separator
// line gives (zero when the line has none that parses).
func SplitMbox(r io.Reader, each func(msg []byte, at time.Time) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	var (
		msg  bytes.Buffer
		at   time.Time
		open bool
		n    int
	)
	flush := func() error {
		if !open {
			return nil
		}
		// The blank line before the next separator belongs to the mbox.
		b := bytes.TrimSuffix(msg.Bytes(), []byte("\n"))
		if !bytes.HasSuffix(b, []byte("\n")) && len(b) > 0 {
			b = append(b, '\n')
		}
		return each(b, at)
	}
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "From ") {
			if err := flush(); err != nil {
				return err
			}
			msg.Reset()
			open, at = true, fromLineTime(line)
			continue
		}
		if !open {
			if line == "" {
				continue
			}
			return fmt.Errorf("mbox line %d: text before the first \"From \" line", n)
		}
		if fromQuoted.MatchString(line) {
			line = line[1:]
		}
		msg.WriteString(line)
		msg.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("mbox line %d: %w", n+1, err)
	}
	return flush()
}

// fromLineTime is the date of a "From sender date" line.
func fromLineTime(line string) time.Time {
	f := strings.Fields(line)
	if len(f) < 7 {
		return time.Time{}
	}
	t, err := time.Parse(asctime, strings.Join(f[len(f)-5:], " "))
	if err != nil {
		return time.Time{}
	}
	return t
}

// FromMbox writes every message of the mbox r into d's new/ as a file of
// its own, its modification time the one its separator line gives, so
// that List reads an mbox as it reads a Maildir. It returns how many it
// wrote.
func (d Dir) FromMbox(r io.Reader) (int, error) {
	if err := d.Create(); err != nil {
		return 0, err
	}
	n := 0
	err := SplitMbox(r, func(msg []byte, at time.Time) error {
		n++
		p := filepath.Join(string(d), "new", fmt.Sprintf("mbox.%06d", n))
		if err := os.WriteFile(p, msg, 0o644); err != nil {
			return err
		}
		if !at.IsZero() {
			return os.Chtimes(p, at, at)
		}
		return nil
	})
	return n, err
}
