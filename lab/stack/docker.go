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
//   - mapped ports on 127.0.0.1 when the engine is local: testcontainers
//     otherwise believes a /.dockerenv means it runs in a container and
//     dials the bridge gateway, which times out on these machines;
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
		if localEngine() {
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

// Connect reaches the Docker engine the way testcontainers-go does
// (DOCKER_HOST, docker contexts, the default socket).
func Connect(ctx context.Context) (*Engine, error) {
	configureTestcontainers()
	cli, err := tc.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
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
