// Package stack builds the lab's images and runs its containers on a fresh
// Docker bridge network with testcontainers-go: one file per concern
// (image, network and roles, cleanup). Everything it creates carries the
// label smtplab=1 and smtplab.run=<run id>, so Clean finds what a killed
// run left behind.
package stack

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	tc "github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Labels put on everything the lab creates.
const (
	LabelLab  = "smtplab"
	LabelRun  = "smtplab.run"
	LabelRole = "smtplab.role"
)

var envOnce sync.Once

// configureTestcontainers sets what testcontainers-go needs on machines
// without a registry, before its configuration is first read:
//   - no Ryuk reaper (it is an image to pull); the lab removes what it
//     made itself, by label;
//   - mapped ports on 127.0.0.1 when the engine is local and this host
//     has a /.dockerenv (TESTCONTAINERS_HOST_OVERRIDE): testcontainers
//     otherwise believes it runs in a container and dials the bridge
//     gateway, which times out on such machines; elsewhere it finds the
//     host as it always does;
//   - its banner and container chatter only with SMTPLAB_DEBUG set.
//
// A value the user set is kept.
func configureTestcontainers() {
	envOnce.Do(func() {
		setDefault := func(k, v string) {
			if _, ok := os.LookupEnv(k); !ok {
				os.Setenv(k, v)
			}
		}
		setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
		if os.Getenv("SMTPLAB_DEBUG") == "" {
			tclog.SetDefault(tclog.NewNoopLogger())
		}
		if _, err := os.Stat("/.dockerenv"); err == nil && localEngine() {
			setDefault("TESTCONTAINERS_HOST_OVERRIDE", Loopback)
		}
	})
}

// localEngine says whether the Docker engine runs on this host (a Unix
// socket), so that ports it publishes on its loopback are reachable here.
func localEngine() bool {
	h := os.Getenv("DOCKER_HOST")
	return h == "" || strings.HasPrefix(h, "unix://")
}

// Engine is a connection to the Docker engine.
type Engine struct {
	*client.Client
	Version string // engine version
	Arch    string // engine platform, as GOARCH
	CPUs    int    // the engine's CPUs and memory (bytes), for the result; 0 when unknown
	Memory  int64
}

// Connect reaches the Docker engine the way the docker CLI and
// testcontainers-go do (DOCKER_HOST, docker contexts, the default
// socket). A DOCKER_HOST that does not answer is an error at once, naming
// it: testcontainers-go would fall back to the default socket and run
// the lab on an engine the user did not choose.
func Connect(ctx context.Context) (*Engine, error) {
	configureTestcontainers()
	host := os.Getenv("DOCKER_HOST")
	if host != "" {
		if err := ping(ctx, host); err != nil {
			return nil, fmt.Errorf("docker engine not reachable at %s (DOCKER_HOST): %w", host, err)
		}
	}
	cli, err := tc.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	if got := cli.DaemonHost(); host != "" && got != host {
		cli.Close()
		return nil, fmt.Errorf("docker engine: DOCKER_HOST is %s, but testcontainers-go chose %s", host, got)
	}
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine not reachable: %w", err)
	}
	e := &Engine{Client: cli.Client, Version: v.Version, Arch: v.Arch}
	if info, err := cli.Client.Info(ctx, client.InfoOptions{}); err == nil {
		e.CPUs, e.Memory = info.Info.NCPU, info.Info.MemTotal
	}
	return e, nil
}

// ping asks the engine at host for its version, within 10 s.
func ping(ctx context.Context, host string) error {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = c.Ping(ctx, client.PingOptions{})
	return err
}
