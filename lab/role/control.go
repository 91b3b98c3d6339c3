package role

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/sender"
)

// AwaitAll serves several roles in one process, one per control address,
// each given its spec as Await gives it: a swarm service cannot share a
// network namespace with another, so the sending host's identd is served
// by the sender's process (`lab role --await :8080 --await :8113`). The
// first address's spec is written to specPath, where `lab sendmail`
// looks; each other's beside it, named for its port, and its spool
// likewise, so that no two roles write one file. The first role to fail
// ends them all.
func AwaitAll(ctx context.Context, controls []string, specPath string, stdout io.Writer) error {
	if len(controls) == 1 {
		return Await(ctx, controls[0], specPath, stdout)
	}
	paths, spools := make([]string, len(controls)), make([]string, len(controls))
	for i, control := range controls {
		paths[i] = specPath
		if i > 0 {
			_, port, err := net.SplitHostPort(control)
			if err != nil {
				return fmt.Errorf("control port %q: %w", control, err)
			}
			paths[i], spools[i] = suffixed(specPath, port), port
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(controls))
	for i, control := range controls {
		go func() { errs <- await(ctx, control, paths[i], spools[i], stdout) }()
	}
	var first error
	for range controls {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// suffixed is path with "-" and suffix before its extension.
func suffixed(path, suffix string) string {
	ext := filepath.Ext(path)
	return path[:len(path)-len(ext)] + "-" + suffix + ext
}

// Await serves the control address until a Spec arrives (POST /spec),
// then runs that role (Run) on the same address. A container started this
// way (`lab role --await`) gets its configuration from whoever drives the
// lab: the compose runner, which learns the other services' addresses only
// once they are up. Until then GET /status answers 503. The spec is
// written to specPath first, where `lab sendmail` looks for the queue.
func Await(ctx context.Context, control, specPath string, stdout io.Writer) error {
	return await(ctx, control, specPath, "", stdout)
}

// await is Await; a spoolSuffix not empty names the role's spool apart
// from another role's in the same container (AwaitAll).
func await(ctx context.Context, control, specPath, spoolSuffix string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", control)
	if err != nil {
		return fmt.Errorf("control port: %w", err)
	}
	got := make(chan Spec, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /spec", func(w http.ResponseWriter, r *http.Request) {
		s, err := DecodeSpec(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case got <- s:
			w.WriteHeader(http.StatusAccepted)
		default:
			http.Error(w, "a spec was already given", http.StatusConflict)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "awaiting a role spec (POST /spec)", http.StatusServiceUnavailable)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	fmt.Fprintln(stdout, "smtplab awaiting a role spec on", control)
	var spec Spec
	select {
	case <-ctx.Done():
		hs.Close()
		return nil
	case spec = <-got:
	}
	// Let the 202 go out, then free the port for the role's own server.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if spec.Control == "" {
		spec.Control = control
	}
	if spoolSuffix != "" && spec.Spool != "" {
		spec.Spool = suffixed(spec.Spool, spoolSuffix)
	}
	b, _ := json.Marshal(spec)
	if err := os.MkdirAll(filepath.Dir(specPath), 0o755); err != nil {
		return fmt.Errorf("role spec: %w", err)
	}
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		return fmt.Errorf("role spec: %w", err)
	}
	return Run(ctx, spec, stdout)
}

// DecodeSpec reads a Spec as JSON, refusing unknown fields.
func DecodeSpec(r io.Reader) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("role spec: %w", err)
	}
	return s, nil
}

// injectHandler runs the workload's injection loop in the sender's
// container (POST /inject with a sender.Injection as JSON; the answer is
// the sender.InjectResult): one `lab sendmail` process per message, as
// the 1999 shell loop did, or that sendmail's code in the sender's
// process (Injection.Direct), on the injection's schedule (lab/pace). A
// burst is queued whole while srv holds its queue, then released. The
// caller waits for the whole loop.
func injectHandler(srv *sender.Sender) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inj, err := DecodeInjection(http.MaxBytesReader(w, r.Body, 256<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		self, err := os.Executable()
		if err != nil {
			http.Error(w, "inject: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if inj.Pace.Mode == pace.Burst {
			srv.Hold()
		}
		res := srv.Inject(r.Context(), inj, []string{self, "sendmail"})
		srv.Release()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})
}

// DecodeInjection reads a POST /inject body: a sender.Injection as JSON,
// unknown fields refused, its pace valid (lab/pace).
func DecodeInjection(r io.Reader) (sender.Injection, error) {
	var inj sender.Injection
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inj); err != nil {
		return inj, fmt.Errorf("inject: %w", err)
	}
	if err := inj.Pace.Validate(); err != nil {
		return inj, fmt.Errorf("inject: pace: %w", err)
	}
	if err := inj.ValidatePlaces(); err != nil {
		return inj, fmt.Errorf("inject: %w", err)
	}
	return inj, nil
}

// maildirHandler serves the receiver's Maildir folder as a tar stream
// (GET /maildir), entries named as the engine's archive API names them
// (the folder's base name first), so one reader takes both.
func maildirHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := tarDir(&buf, dir); err != nil {
			http.Error(w, "maildir: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(buf.Bytes())
	})
}

func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	parent := filepath.Dir(filepath.Clean(dir))
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // renamed from tmp/ to new/ while we walked
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		var body []byte
		if !info.IsDir() {
			// Read first, and size the entry by what was read: a file may
			// vanish (renamed into new/) or change while we walk.
			if body, err = os.ReadFile(p); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(parent, p)
		h.Format = tar.FormatPAX // keeps modification times to the nanosecond
		if info.IsDir() {
			h.Name += "/"
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
