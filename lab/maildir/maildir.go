// Package maildir delivers to and reads a Maildir, to the letter of the
// format (https://cr.yp.to/proto/maildir.html): a unique name, the file
// written and fsynced in tmp/, then linked into new/ (and unlinked from
// tmp/), so a reader never sees a partial message in new/ and no message
// ever replaces another.
package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Dir is a Maildir on disk.
type Dir string

// Create makes the Maildir's tmp, new and cur folders.
func (d Dir) Create() error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(string(d), sub), 0o700); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	return nil
}

var (
	seq atomic.Uint64
	// pid is the P part of every unique name: os.Getpid is a system call
	// each time, and a process's pid does not change.
	pid = os.Getpid()
)

// nameHost writes host as the last part of a unique name: '/' would make
// a path and ':' starts the info part in cur/, so the spec has them
// written as \057 and \072.
var nameHost = strings.NewReplacer("/", `\057`, ":", `\072`)

// uniqueName is the spec's unique name, TIME.MusecPpidQseq.host: the
// time, then what makes it unique within this process and second.
func uniqueName(now time.Time, host string) string {
	b := make([]byte, 0, 64+len(host))
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, seq.Add(1), 10)
	b = append(b, '.')
	if strings.ContainsAny(host, "/:") {
		host = nameHost.Replace(host)
	}
	return string(append(b, host...))
}

// Deliver writes data as one new message and returns its path in new/.
// With sync, the message is durable when Deliver returns nil: file and
// folder are both fsynced (without, it is only as durable as the page
// cache: for measuring what the fsyncs cost). On error nothing is left in
// tmp/ or new/, so the caller can have the message sent again without
// duplicating it.
//
// The system calls, and what each buys (on Linux, file.go's are made
// directly, without os.File's attempt to register a regular file with
// the network poller, four fcntl and an epoll_ctl per file): open in
// tmp/ (O_EXCL: a unique name, never someone else's file), write (the
// message), fsync with sync (the data on disk before its name is in
// new/), close, one rename into new/ that never replaces a file there
// (RENAME_NOREPLACE; where the file system lacks it, link then unlink as
// the spec and Courier do), and with sync open, fsync and close of new/
// (the name on disk). The open in tmp/ and the rename are made holding
// the Maildir's lock (folders), the write and the fsyncs are not.
func (d Dir) Deliver(data []byte, host string, sync bool) (string, error) {
	f := d.folder()
	base, dirOps := f.prefix, &f.ops
	name := uniqueName(time.Now(), host)
	tmp := base + "tmp" + string(filepath.Separator) + name
	if err := writeNew(tmp, data, sync, dirOps); err != nil {
		return "", fmt.Errorf("maildir: write %s: %w", tmp, err)
	}
	dst := base + "new" + string(filepath.Separator) + name
	dirOps.Lock()
	err := moveNew(tmp, dst)
	dirOps.Unlock()
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("maildir: %w", err)
	}
	if !sync {
		return dst, nil
	}
	if err := syncDir(base + "new"); err != nil {
		// Not known to be durable: take it back rather than report a
		// failure for a message that stays in new/.
		os.Remove(dst)
		return "", fmt.Errorf("maildir: %w", err)
	}
	return dst, nil
}

// folders holds, for each Maildir this process delivers to (by Dir), its
// prefix and the lock its deliveries hold while they create a file in
// tmp/ or move one into new/. The kernel serialises those calls anyway
// (each takes the folder's lock; a rename from tmp/ to new/ both folders'
// and the file system's rename lock), and where many sessions deliver at
// once the ones waiting spin on the owner in the kernel: on ext4 with 40
// sessions that spinning was 16% of the receiver's CPU. Waiting here parks
// the goroutine instead and lets its thread serve another session. The
// write and the fsyncs are made outside it. Correctness never rests on
// it: two names for one folder get two locks, and the kernel still
// orders their calls.
var folders sync.Map // Dir -> *folder

type folder struct {
	prefix string // Dir.prefix
	ops    sync.Mutex
}

func (d Dir) folder() *folder {
	if f, ok := folders.Load(d); ok {
		return f.(*folder)
	}
	f, _ := folders.LoadOrStore(d, &folder{prefix: d.prefix()})
	return f.(*folder)
}

// prefix is the Maildir's path as filepath.Join would begin a path inside
// it ("" for ".", else cleaned and ending in a separator): Deliver cleans
// the folder once and appends, where filepath.Join cleaned the whole path
// again for each of its three paths.
func (d Dir) prefix() string {
	dir := filepath.Clean(string(d))
	switch {
	case dir == ".":
		return ""
	case strings.HasSuffix(dir, string(filepath.Separator)):
		return dir // the root
	}
	return dir + string(filepath.Separator)
}

// moveNew moves a finished message from tmp/ into new/ so that it never
// replaces a file already in new/: in one rename(2) with
// RENAME_NOREPLACE where the system has it (renameNoReplace), else as
// the spec and Courier's maildir_movetmpnew (courier-libs
// maildir/maildircreate.c) do: link(2), which never replaces, then unlink
// the tmp/ name; rename(2) only where the file system has no hard links.
// On an error the tmp/ file is still there.
func moveNew(tmp, dst string) error {
	if ok, err := renameNoReplace(tmp, dst); ok {
		return err
	}
	err := os.Link(tmp, dst)
	if err == nil {
		// The message is in new/ now: delivered. A tmp/ name left behind
		// is only litter (maildir readers clean tmp/ of old files); failing
		// here would have the sender deliver a second copy.
		os.Remove(tmp)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	var le *os.LinkError
	if errors.As(err, &le) && (errors.Is(le.Err, syscall.EPERM) || errors.Is(le.Err, syscall.EXDEV) || errors.Is(le.Err, syscall.ENOTSUP)) {
		return os.Rename(tmp, dst)
	}
	return err
}

// Message is one message found in a Maildir.
type Message struct {
	Path      string
	MessageID string
	ModTime   time.Time
}

// List reads every message in new/ and cur/ and returns its Message-ID.
func (d Dir) List() ([]Message, error) {
	var out []Message
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(string(d), sub))
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(string(d), sub, e.Name())
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("maildir: %w", err)
			}
			h, _ := textproto.NewReader(bufio.NewReader(f)).ReadMIMEHeader()
			fi, _ := f.Stat()
			f.Close()
			m := Message{Path: p, MessageID: strings.TrimSpace(h.Get("Message-Id"))}
			if fi != nil {
				m.ModTime = fi.ModTime()
			}
			out = append(out, m)
		}
	}
	return out, nil
}
