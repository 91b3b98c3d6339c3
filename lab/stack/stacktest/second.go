package stacktest

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/stack"
)

// The second engine's own bridge and address pool, apart from the first
// engine's (172.17.0.0/16 and Docker's default pools).
const (
	secondBridge     = "smtplab2br"
	secondBridgeAddr = "10.214.0.1/24"
	secondPool       = "10.213.0.0/16"
)

// SecondEngine starts a second Docker engine on this machine, beside the
// one tests use, and returns its DOCKER_HOST (a unix socket) and a
// client of it (not through Connect: testcontainers-go settles on one
// engine per process). It stops it and removes what it made when t ends.
// It needs root, dockerd, ip and iptables.
//
// Two engines on one host must not share anything: its own data, exec
// root, socket and containerd namespaces; a default bridge of its own
// (dockerd deletes docker0 when it starts with --bridge=none, and
// reconfigures it with the default, both the first engine's:
// daemon/daemon_unix.go in moby); no iptables of its own (it would
// rewrite the chains the first engine's published ports live in), and
// so one FORWARD rule letting its networks' containers reach each other
// past the first engine's DROP policy.
func SecondEngine(t testing.TB) (string, *stack.Engine) {
	t.Helper()
	dockerd := labtest.Tool(t, "dockerd", labtest.DockerEnv)
	iptables := labtest.Tool(t, "iptables", labtest.DockerEnv)
	ip := labtest.Tool(t, "ip", labtest.DockerEnv)
	if os.Geteuid() != 0 {
		labtest.Require(t, labtest.DockerEnv, "root, to start a second Docker engine", errors.New("not root"))
	}
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return errors.New(name + " " + strings.Join(args, " ") + ": " + err.Error() + ": " + string(out))
		}
		return nil
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A bridge left by a killed test goes first.
	_ = run(ip, "link", "del", secondBridge)
	must(run(ip, "link", "add", secondBridge, "type", "bridge"))
	t.Cleanup(func() { _ = run(ip, "link", "del", secondBridge) })
	must(run(ip, "addr", "add", secondBridgeAddr, "dev", secondBridge))
	must(run(ip, "link", "set", secondBridge, "up"))
	rule := []string{"FORWARD", "-s", secondPool, "-d", secondPool, "-j", "ACCEPT"}
	must(run(iptables, append([]string{"-I"}, rule...)...))
	t.Cleanup(func() {
		for run(iptables, append([]string{"-D"}, rule...)...) == nil {
		}
	})

	dir, err := os.MkdirTemp("", "smtplab-dockerd-")
	must(err)
	data := filepath.Join(dir, "data")
	must(os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644))
	sock := filepath.Join(dir, "docker.sock")
	ns := "smtplab-second-" + filepath.Base(dir)
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	must(err)
	cmd := exec.Command(dockerd,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", data, "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", "unix://"+sock,
		"--bridge", secondBridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--containerd-namespace", ns, "--containerd-plugins-namespace", ns+"-plugins",
		"--default-address-pool", "base="+secondPool+",size=24")
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		unmountUnder(data)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the second engine's folder: %v", err)
		}
	})
	host := "unix://" + sock
	cli, err := client.New(client.WithHost(host))
	must(err)
	t.Cleanup(func() { cli.Close() })
	labtest.Until(t, "the second Docker engine answering at "+host, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := cli.Ping(ctx, client.PingOptions{})
		return err == nil
	})
	return host, &stack.Engine{Client: cli}
}

// unmountUnder unmounts what a killed engine left mounted under dir.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var under []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 1 && strings.HasPrefix(fs[1], dir+"/") {
			under = append(under, fs[1])
		}
	}
	for i := len(under) - 1; i >= 0; i-- {
		syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
}
