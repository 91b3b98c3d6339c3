package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	tc "github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The reaper removes a run's containers and network when the lab that
// made them is gone: kill -9 of the lab leaves it no chance to clean up.
// It is what testcontainers' Ryuk does (an image that cannot be pulled on
// a machine without a registry), in the lab's own binary: New starts it
// first, in the lab's image with the engine's socket, and the lab holds a
// TCP connection to it for the run's life. Once no connection is left and
// none has come back for ReaperGrace, or none came within
// ReaperFirstContact of its start, it removes everything carrying the
// run's label, itself last, and exits.
const (
	ReaperPort         = "8099"
	ReaperGrace        = 5 * time.Second
	ReaperFirstContact = time.Minute
	reaperRole         = "reaper"
)

// ReaperReadyLine is what the reaper prints once it listens.
const ReaperReadyLine = "smtplab reaper ready"

// Reap serves the reaper on listen for runID until it has reaped (see
// above) or ctx ends.
func Reap(ctx context.Context, listen, runID string, stdout io.Writer) error {
	if runID == "" {
		return errors.New("reaper: no run to watch")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	defer ln.Close()
	var mu sync.Mutex
	open := 0
	changed := make(chan struct{}, 1)
	notify := func(d int) {
		mu.Lock()
		open += d
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			notify(+1)
			go func() {
				io.Copy(io.Discard, c) // until the lab's end closes it
				c.Close()
				notify(-1)
			}()
		}
	}()
	fmt.Fprintln(stdout, ReaperReadyLine)
	timer := time.NewTimer(ReaperFirstContact)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			mu.Lock()
			n := open
			mu.Unlock()
			if n > 0 {
				timer.Stop()
			} else {
				timer.Reset(ReaperGrace)
			}
		case <-timer.C:
			fmt.Fprintf(stdout, "reaper: the lab of run %s is gone; removing the run\n", runID)
			return reap(ctx, runID)
		}
	}
}

// reap removes the run's containers but this one, its networks, then this
// container (the hostname Docker gives a container is its short id).
func reap(ctx context.Context, runID string) error {
	eng, err := Connect(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	found, err := Find(ctx, eng, runID)
	if err != nil {
		return err
	}
	self, _ := os.Hostname()
	var errs []error
	var mine string
	for _, id := range found.Containers {
		if self != "" && strings.HasPrefix(id, self) {
			mine = id
			continue
		}
		if _, err := eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range found.Networks {
		if _, err := eng.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	if mine != "" {
		_, err := eng.ContainerRemove(ctx, mine, client.ContainerRemoveOptions{Force: true})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startReaper starts the run's reaper and connects to it; without a local
// engine (whose socket it needs) there is none, and Clean is the way.
func (s *Stack) startReaper(ctx context.Context) error {
	sock, ok := engineSocket()
	if !ok {
		return nil
	}
	labels := map[string]string{LabelRole: reaperRole}
	for k, v := range s.labels {
		labels[k] = v
	}
	port := ReaperPort + "/tcp"
	c, err := tc.Run(ctx, s.image.Ref,
		tc.WithCmd("reaper", "--run", s.runID, "--listen", ":"+ReaperPort),
		tc.WithLabels(labels),
		tc.WithExposedPorts(port),
		tc.WithWaitStrategy(wait.ForLog(ReaperReadyLine).WithStartupTimeout(60*time.Second)),
		tc.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, sock+":/var/run/docker.sock")
			hc.PortBindings = mnet.PortMap{mnet.MustParsePort(port): {{HostIP: loopbackAddr()}}}
		}),
	)
	if c != nil {
		s.reaper = &Container{Role: reaperRole, eng: s.eng, c: c}
	}
	if err != nil {
		return fmt.Errorf("start the run's reaper: %w%s", err, s.logsOf(ctx, c))
	}
	ep, err := c.PortEndpoint(ctx, port, "")
	if err != nil {
		return fmt.Errorf("the run's reaper: %w", err)
	}
	conn, err := net.DialTimeout("tcp", ep, 30*time.Second)
	if err != nil {
		return fmt.Errorf("connect to the run's reaper: %w", err)
	}
	s.reaperConn = conn
	return nil
}

// engineSocket is the local engine's Unix socket, for the reaper to mount.
func engineSocket() (string, bool) {
	h := os.Getenv("DOCKER_HOST")
	switch {
	case h == "":
		return "/var/run/docker.sock", true
	case strings.HasPrefix(h, "unix://"):
		return strings.TrimPrefix(h, "unix://"), true
	}
	return "", false
}
