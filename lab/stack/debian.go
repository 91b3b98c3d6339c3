package stack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	courierimage "github.com/smtplab/smtplab/images/courier"
	eximimage "github.com/smtplab/smtplab/images/exim"
	postfiximage "github.com/smtplab/smtplab/images/postfix"
)

// A real MTA's image is built in two layers, without a registry:
//
//  1. a Debian userland: debootstrap --variant=minbase of Suite from
//     Mirror with the MTA's packages, imported with the engine's
//     ImageImport. Tagged smtplab/<name>-base:<key of suite, mirror,
//     packages>: built once per machine (about a minute), reused after.
//  2. the configuration: images/<name>/Dockerfile FROM that base, its
//     files (start script, static settings) and the lab's own static
//     binary (/lab inject runs the 1999 benchmark's loop with the MTA's sendmail).
//     Tagged smtplab/<name>:<key of the base and every file>: rebuilt in
//     about a second when a file changes.
//
// What depends on a scenario (limits, blacklists, routes) is not in the
// image: the lab writes it into the container before it starts (lab/mta).

// Debian names the userland of every MTA image.
const (
	DebianSuite  = "bookworm"
	DebianMirror = "http://deb.debian.org/debian"
)

// MTA is one real MTA's image recipe.
type MTA struct {
	Name     string   // "courier", "postfix", "exim": the image is smtplab/<Name>
	Packages []string // installed by debootstrap besides minbase
	Files    fs.FS    // images/<Name>: Dockerfile and what it copies
}

// MTAs are the real MTAs the lab can run.
var MTAs = map[string]MTA{
	// netbase: /etc/services, without which couriertcpd fails "Invalid
	// port: smtp" while esmtpd start exits 0. busybox-syslogd: Courier
	// logs through syslog only.
	"courier": {Name: "courier", Packages: []string{"courier-mta", "netbase", "busybox-syslogd"}, Files: courierimage.Files},
	"postfix": {Name: "postfix", Packages: []string{"postfix", "netbase"}, Files: postfiximage.Files},
	// netbase: /etc/services, for the "smtp" port names in Exim's
	// configuration and its transports.
	"exim": {Name: "exim", Packages: []string{"exim4-daemon-light", "netbase"}, Files: eximimage.Files},
}

// ErrNoDebootstrap says what to install to build an MTA's image.
var ErrNoDebootstrap = errors.New("debootstrap is not installed: it builds the Debian userland of the real MTAs' images (Courier, Postfix, Exim; no registry needed); install it with `apt-get install debootstrap` (as root), then run `go run ./cmd/lab images`")

// BaseRef is the tag of m's Debian userland (layer 1).
func (m MTA) BaseRef() string {
	pk := slices.Clone(m.Packages)
	slices.Sort(pk)
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap --variant=minbase\nsuite %s\nmirror %s\npackages %s\n", DebianSuite, DebianMirror, strings.Join(pk, ","))
	return fmt.Sprintf("smtplab/%s-base:%s", m.Name, hex.EncodeToString(h.Sum(nil))[:16])
}

// Build makes both layers of m's image as needed; labBinary is the lab's
// static binary for the engine's platform.
func (m MTA) Build(ctx context.Context, eng *Engine, labBinary []byte, logf func(string, ...any)) (Image, error) {
	base := m.BaseRef()
	if _, _, err := buildOnce(ctx, eng, base, logf, func() (string, error) {
		if err := m.importBase(ctx, eng, base, logf); err != nil {
			return "", err
		}
		got, err := eng.ImageInspect(ctx, base)
		if err != nil {
			return "", fmt.Errorf("build %s: %w", base, err)
		}
		return got.ID, nil
	}); err != nil {
		return Image{}, err
	}
	files, err := readTree(m.Files)
	if err != nil {
		return Image{}, fmt.Errorf("build %s image: %w", m.Name, err)
	}
	files["lab"] = labBinary
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	fmt.Fprintf(h, "base %s\n", base)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(h, "%s %x\n", n, sum)
	}
	img := Image{Ref: fmt.Sprintf("smtplab/%s:%s", m.Name, hex.EncodeToString(h.Sum(nil))[:16])}
	img.ID, img.Built, err = buildOnce(ctx, eng, img.Ref, logf, func() (string, error) {
		logf("building image %s (configuration layer over %s)", img.Ref, base)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, n := range names {
			mode := int64(0o644)
			if n == "lab" || strings.HasSuffix(n, ".sh") {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n]))}); err != nil {
				return "", fmt.Errorf("build %s image: %w", m.Name, err)
			}
			tw.Write(files[n])
		}
		if err := tw.Close(); err != nil {
			return "", fmt.Errorf("build %s image: %w", m.Name, err)
		}
		return buildImage(ctx, eng, &buf, img.Ref, map[string]*string{"BASE": &base})
	})
	return img, err
}

// importBase runs debootstrap into a temporary folder (removed after) and
// imports the tree as ref.
func (m MTA) importBase(ctx context.Context, eng *Engine, ref string, logf func(string, ...any)) error {
	tool, err := exec.LookPath("debootstrap")
	if err != nil {
		return ErrNoDebootstrap
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("build %s: debootstrap must run as root (it makes device files and chroots); run `sudo go run ./cmd/lab images` once, the image is reused after", ref)
	}
	tmp, err := os.MkdirTemp("", "smtplab-debootstrap-")
	if err != nil {
		return fmt.Errorf("build %s: %w", ref, err)
	}
	root := tmp + "/root"
	defer func() {
		// debootstrap unmounts what it mounted in the tree when it ends;
		// killed half way it cannot: nothing under a mount is removed.
		for _, m := range []string{"/proc", "/sys", "/dev/pts"} {
			syscall.Unmount(root+m, syscall.MNT_DETACH)
		}
		os.RemoveAll(tmp)
	}()
	start := time.Now()
	logf("building image %s: debootstrap --variant=minbase %s with %s from %s (about a minute, once per machine)",
		ref, DebianSuite, strings.Join(m.Packages, ", "), DebianMirror)
	cmd := exec.CommandContext(ctx, tool, "--variant=minbase", "--include="+strings.Join(m.Packages, ","), DebianSuite, root, DebianMirror)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	// debootstrap runs wget, dpkg and chroot as its children: cancelled,
	// the whole process group goes, or they would hold the output open
	// and write into the tree after it is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("build %s: %w", ref, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build %s: debootstrap: %w", ref, err)
	}
	tail := watchDebootstrap(out, func(p debootstrapProgress) {
		count := ""
		if p.Count > 0 {
			count = fmt.Sprintf(", %d so far", p.Count)
		}
		logf("  debootstrap %s: %s%s, %.0f s", m.Name, p.Stage, count, time.Since(start).Seconds())
	})
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("build %s: debootstrap failed: %w\n%s", ref, err, strings.Join(tail, "\n"))
	}
	logf("  debootstrap %s: done in %.0f s; importing into the engine", m.Name, time.Since(start).Seconds())
	if err := importTree(ctx, eng, root, ref); err != nil {
		return fmt.Errorf("build %s: %w", ref, err)
	}
	logf("  image %s imported, %.0f s in all", ref, time.Since(start).Seconds())
	return nil
}

// importTree streams a tar of dir (the host's tar keeps owners, device
// files and hard links as they are) into the engine's image import.
func importTree(ctx context.Context, eng *Engine, dir, ref string) error {
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", dir, "-c", ".")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	res, err := eng.ImageImport(ctx, client.ImageImportSource{Source: pipe, SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{"LABEL " + LabelLab + "=1", "CMD [\"/bin/sh\"]"}, Message: "debootstrap --variant=minbase " + DebianSuite})
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("docker import: %w", err)
	}
	defer res.Close()
	rerr := readBuildStream(res)
	if werr := cmd.Wait(); werr != nil {
		return fmt.Errorf("tar: %w: %s", werr, stderr.String())
	}
	if rerr != nil {
		return fmt.Errorf("docker import: %w", rerr)
	}
	return nil
}

// debootstrapProgress is where debootstrap is: its stage ("retrieving",
// "validating", "extracting", "unpacking", "configuring", ...) and how many
// packages that stage has done.
type debootstrapProgress struct {
	Stage string
	Count int
}

// watchDebootstrap reads debootstrap's "I: Retrieving foo 1.0" lines and
// reports a change of stage at once, progress within one every 5 s. It
// returns the last lines, for an error.
func watchDebootstrap(r io.Reader, report func(debootstrapProgress)) []string {
	var p debootstrapProgress
	var tail []string
	last := time.Now()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		tail = append(tail, line)
		if len(tail) > 20 {
			tail = tail[1:]
		}
		stage, counts, ok := debootstrapStage(line)
		if !ok {
			continue
		}
		if stage != p.Stage {
			if p.Stage != "" {
				report(p)
			}
			p = debootstrapProgress{Stage: stage}
			last = time.Now()
		}
		if counts {
			p.Count++
		}
		if time.Since(last) >= 5*time.Second {
			report(p)
			last = time.Now()
		}
	}
	if p.Stage != "" {
		report(p)
	}
	return tail
}

// debootstrapStage is the stage an "I: Verb package version" line is in,
// and whether the line counts one package done (debootstrap alternates
// "Retrieving foo" and "Validating foo": one stage, one package).
func debootstrapStage(line string) (stage string, counts bool, ok bool) {
	rest, ok := strings.CutPrefix(line, "I: ")
	if !ok {
		return "", false, false
	}
	verb, _, _ := strings.Cut(rest, " ")
	switch verb {
	case "Retrieving":
		return "downloading", true, true
	case "Validating":
		return "downloading", false, true
	case "Extracting", "Unpacking", "Configuring":
		return strings.ToLower(verb), true, true
	case "Installing":
		return "installing", false, true
	}
	return "", false, false
}

// readTree reads every file of fsys by its slash path, skipping Go files
// (the embedding package itself).
func readTree(fsys fs.FS) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) == ".go" {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		out[p] = b
		return err
	})
	return out, err
}
