package stack

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"

	"github.com/moby/moby/client"

	smtplab "github.com/smtplab/smtplab"
	labimage "github.com/smtplab/smtplab/images/lab"
)

// Image is a built image.
type Image struct {
	Ref     string `json:"ref"` // smtplab/lab:<content hash>
	ID      string `json:"id"`
	Built   bool   `json:"built"`   // false when an image with the same content was reused
	Version string `json:"version"` // git describe of the source; not in the binary (-buildvcs=false), so a new commit with the same code reuses the image
}

// BuildLabImage compiles the lab statically for the engine's platform and
// builds the FROM-scratch image holding it, tagged by a hash of its
// content: an unchanged build is reused, a changed one rebuilt. It must
// run inside the smtplab source tree (it builds ./cmd/lab there).
func BuildLabImage(ctx context.Context, eng *Engine, logf func(string, ...any)) (Image, error) {
	binary, version, err := compileLab(ctx, eng)
	if err != nil {
		return Image{}, err
	}
	return labImage(ctx, eng, binary, version, logf)
}

// BuildImages builds the lab's image and those of the named real MTAs
// (lab/stack/debian.go), compiling the lab once for all.
func BuildImages(ctx context.Context, eng *Engine, mtas []string, logf func(string, ...any)) (Image, map[string]Image, error) {
	binary, version, err := compileLab(ctx, eng)
	if err != nil {
		return Image{}, nil, err
	}
	img, err := labImage(ctx, eng, binary, version, logf)
	if err != nil {
		return img, nil, err
	}
	out := map[string]Image{}
	for _, n := range mtas {
		m, ok := MTAs[n]
		if !ok {
			return img, nil, fmt.Errorf("build image: no MTA named %q (the lab has courier and postfix)", n)
		}
		mi, err := m.Build(ctx, eng, binary, logf)
		if err != nil {
			return img, nil, err
		}
		mi.Version = version
		out[n] = mi
	}
	return img, out, nil
}

func labImage(ctx context.Context, eng *Engine, binary []byte, version string, logf func(string, ...any)) (Image, error) {
	img := Image{Ref: labRef(binary), Version: version}
	var err error
	img.ID, img.Built, err = buildOnce(ctx, eng, img.Ref, logf, func() (string, error) {
		logf("building image %s", img.Ref)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, f := range []struct {
			name string
			data []byte
			mode int64
		}{{"Dockerfile", labimage.Dockerfile, 0o644}, {"lab", binary, 0o755}} {
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
				return "", fmt.Errorf("build image: %w", err)
			}
			tw.Write(f.data)
		}
		// The folders the roles write are copied from it, owned by nobody
		// (images/lab/Dockerfile).
		if err := tw.WriteHeader(&tar.Header{Name: "empty/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return "", fmt.Errorf("build image: %w", err)
		}
		if err := tw.Close(); err != nil {
			return "", fmt.Errorf("build image: %w", err)
		}
		return buildImage(ctx, eng, &buf, img.Ref, nil)
	})
	return img, err
}

// labRef is the tag of the lab's image holding binary.
func labRef(binary []byte) string {
	h := sha256.New()
	h.Write(labimage.Dockerfile)
	h.Write(binary)
	return "smtplab/lab:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// buildOnce returns the ID of the image ref, and whether it was built:
// build makes it (returning its ID) when the engine does not have it. An
// image that exists is used as it is, taking no lock, so a run whose
// images exist never waits for another process's build; one that does
// not is built under its own lock (imageLock in lab/stack/lock.go), and
// looked for again once the lock is held, as the process that held it
// may have just built it.
func buildOnce(ctx context.Context, eng *Engine, ref string, logf func(string, ...any), build func() (string, error)) (id string, built bool, err error) {
	if got, err := eng.ImageInspect(ctx, ref); err == nil {
		return got.ID, false, nil
	}
	unlock, err := imageLock(ctx, ref, logf)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if got, err := eng.ImageInspect(ctx, ref); err == nil {
		return got.ID, false, nil
	}
	id, err = build()
	return id, err == nil, err
}

// buildImage builds the Dockerfile in the tar context as ref, labelled as
// the lab's, and returns the image's ID.
func buildImage(ctx context.Context, eng *Engine, tarball io.Reader, ref string, args map[string]*string) (string, error) {
	res, err := eng.ImageBuild(ctx, tarball, client.ImageBuildOptions{
		Tags: []string{ref}, Remove: true, ForceRemove: true, BuildArgs: args,
		Labels: map[string]string{LabelLab: "1"},
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	defer res.Body.Close()
	if err := readBuildStream(res.Body); err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	got, err := eng.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	return got.ID, nil
}

// compileLab returns the lab's static binary for the engine's platform,
// and the source's version. In the smtplab source tree it compiles
// ./cmd/lab there (the image is always the code at hand). Elsewhere (a
// binary from `go install`): the running executable itself when it is a
// static Linux executable for the engine's platform (CGO_ENABLED=0), else
// the source embedded in it (smtplab.Source), compiled in a temporary
// folder, which needs the go command.
func compileLab(ctx context.Context, eng *Engine) ([]byte, string, error) {
	root, err := moduleRoot(ctx)
	if err == nil {
		return compileIn(ctx, eng, root, sourceVersion(ctx, root))
	}
	if bin, ok := ownStaticBinary(eng.Arch); ok {
		return bin, BuildVersion(), nil
	}
	if _, lerr := exec.LookPath("go"); lerr != nil {
		return nil, "", fmt.Errorf("build image: this lab executable is not a static Linux one for %s (it was built with cgo, or for another platform), and there is no go command to compile its embedded source; install it with CGO_ENABLED=0 go install, or install Go", eng.Arch)
	}
	tmp, err := os.MkdirTemp("", "smtplab-source-")
	if err != nil {
		return nil, "", fmt.Errorf("build image: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.CopyFS(tmp, smtplab.Source); err != nil {
		return nil, "", fmt.Errorf("build image: unpack the lab's embedded source: %w", err)
	}
	return compileIn(ctx, eng, tmp, BuildVersion())
}

// ownStaticBinary is the running executable, when it can be the image's:
// a Linux ELF for arch with no interpreter (statically linked).
func ownStaticBinary(arch string) ([]byte, bool) {
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
		"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}[arch]
	path, err := os.Executable()
	if err != nil || runtime.GOOS != "linux" || machine == 0 {
		return nil, false
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if f.Machine != machine {
		return nil, false
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, false
		}
	}
	bin, err := os.ReadFile(path)
	return bin, err == nil
}

// BuildVersion is the running executable's version, from its build
// information: the module's version when installed as
// github.com/smtplab/smtplab/cmd/lab@version, else its commit (with
// -dirty for local changes), else "devel".
func BuildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if dirty {
		return rev[:min(12, len(rev))] + "-dirty"
	}
	return rev[:min(12, len(rev))]
}

// Version is the lab's version as a run records it: the source tree's
// git describe when run in it, else BuildVersion.
func Version(ctx context.Context) string {
	if root, err := moduleRoot(ctx); err == nil {
		return sourceVersion(ctx, root)
	}
	return BuildVersion()
}

// compileIn compiles the lab in the source tree at root statically for
// the engine's platform.
func compileIn(ctx context.Context, eng *Engine, root, version string) ([]byte, string, error) {
	tmp, err := os.MkdirTemp("", "smtplab-build-")
	if err != nil {
		return nil, "", fmt.Errorf("build image: %w", err)
	}
	defer os.RemoveAll(tmp)
	// The go command makes its own go-build work folder in GOTMPDIR (else
	// TMPDIR) and removes it when it ends; killed, it cannot. Both point
	// into tmp, which goes whatever happens.
	work := filepath.Join(tmp, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, "", fmt.Errorf("build image: %w", err)
	}
	bin := filepath.Join(tmp, "lab")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", bin, "./cmd/lab")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+eng.Arch, "GOTMPDIR="+work, "TMPDIR="+work)
	// The go command runs the compiler and linker as its children:
	// cancelled, the whole process group goes, or they would go on
	// writing into the work folder as it is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("build image: go build ./cmd/lab: %w", ctx.Err())
		}
		return nil, "", fmt.Errorf("build image: go build ./cmd/lab for linux/%s: %w\n%s", eng.Arch, err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, "", fmt.Errorf("build image: %w", err)
	}
	return binary, version, nil
}

// readBuildStream drains the engine's JSON build progress and returns the
// build's error, if any.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// moduleRoot finds the smtplab source tree from the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("build image: run the lab from the smtplab source tree (it compiles ./cmd/lab into the image); no go.mod found from here")
	}
	data, err := os.ReadFile(gomod)
	if err != nil || !bytes.Contains(data, []byte("module github.com/smtplab/smtplab")) {
		return "", fmt.Errorf("build image: %s is not smtplab's go.mod; run the lab from the smtplab source tree", gomod)
	}
	return filepath.Dir(gomod), nil
}

// sourceVersion names the source: git describe, with -dirty for local
// changes; "devel" outside git.
func sourceVersion(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "devel"
	}
	return strings.TrimSpace(string(out))
}

// LocalImage is an image the user brings (a receiver from any local
// image): it must be on the engine already, as the lab pulls nothing
// (no registry is assumed reachable, and a run must not change what it
// measures by fetching a newer image).
func LocalImage(ctx context.Context, eng *Engine, ref string) (Image, error) {
	got, err := eng.ImageInspect(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Image{}, fmt.Errorf("image %s is not on this Docker engine, and the lab pulls nothing: build it (docker build -t %s DIR) or load it (docker load -i FILE) first", ref, ref)
		}
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	return Image{Ref: ref, ID: got.ID}, nil
}

// LabOver builds base (a local image the user brings to play the sender)
// with the lab's static binary added as /lab, for the lab's injection
// loop to run in it (lab inject); its own entrypoint and command are
// kept. The image is tagged by a hash of base's id and the binary, so an
// unchanged pair is reused.
func LabOver(ctx context.Context, eng *Engine, base Image, logf func(string, ...any)) (Image, error) {
	binary, version, err := compileLab(ctx, eng)
	if err != nil {
		return Image{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "base %s\n", base.ID)
	h.Write(binary)
	img := Image{Ref: "smtplab/with-lab:" + hex.EncodeToString(h.Sum(nil))[:16], Version: version}
	img.ID, img.Built, err = buildOnce(ctx, eng, img.Ref, logf, func() (string, error) {
		logf("building image %s (%s with the lab's /lab)", img.Ref, base.Ref)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		dockerfile := []byte("ARG BASE\nFROM ${BASE}\nCOPY lab /lab\n")
		for _, f := range []struct {
			name string
			mode int64
			data []byte
		}{{"Dockerfile", 0o644, dockerfile}, {"lab", 0o755, binary}} {
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
				return "", err
			}
			if _, err := tw.Write(f.data); err != nil {
				return "", err
			}
		}
		if err := tw.Close(); err != nil {
			return "", err
		}
		ref := base.Ref
		return buildImage(ctx, eng, &buf, img.Ref, map[string]*string{"BASE": &ref})
	})
	return img, err
}
