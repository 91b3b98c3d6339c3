package stack

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	mnet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab/topology"
)

// What a mail-path fault (lab/outage) does to a role's container, through
// the engine's API as docker kill, start, pause and network disconnect
// do. A Container is an outage.Target.

// Kill sends SIGKILL to the container's processes (kill -9): nothing of
// the role gets to clean up. Its writable layer (the sender's queue, the
// receiver's Maildir, a Go role's event spool) stays for a restart.
func (c *Container) Kill(ctx context.Context) error {
	if _, err := c.eng.ContainerKill(ctx, c.id(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", c.Role, err)
	}
	return nil
}

// Start starts a killed container again and waits for its ready line,
// then for the containers that share its network namespace (identd on the
// sender's host), which a new namespace leaves without a network: they
// are killed and started again too. Addresses are found again (Locate):
// the engine gives a restarted container's ports new host ports.
func (c *Container) Start(ctx context.Context) error {
	if err := c.startAndWait(ctx); err != nil {
		return err
	}
	for _, d := range c.st.dependents(c) {
		_ = d.Kill(ctx) // it may have died with the namespace already
		if err := d.startAndWait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (c *Container) startAndWait(ctx context.Context) error {
	since, old := time.Now(), c.Addr()
	if _, err := c.eng.ContainerStart(ctx, c.id(), client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s again: %w", c.Role, err)
	}
	wait := c.spec.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := c.awaitLine(wctx, since, c.spec.Ready); err != nil {
		return fmt.Errorf("start %s again: %w%s", c.Role, err, c.st.logsOf(ctx, c.c))
	}
	return c.relocate(ctx, "start "+string(c.Role)+" again", old)
}

// awaitLine follows the container's output from since until a line holds
// want.
func (c *Container) awaitLine(ctx context.Context, since time.Time, want string) error {
	logs, err := c.eng.ContainerLogs(ctx, c.id(), client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true,
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
	})
	if err != nil {
		return err
	}
	defer logs.Close()
	// The stream is multiplexed (an 8-byte header per frame); a line is
	// still found by its text.
	sc := bufio.NewScanner(logs)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("no %q line: %w", want, err)
	}
	return fmt.Errorf("no %q line before its output ended: %v", want, sc.Err())
}

// Pause freezes every process of the container (the engine's freezer).
func (c *Container) Pause(ctx context.Context) error {
	if _, err := c.eng.ContainerPause(ctx, c.id(), client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause %s: %w", c.Role, err)
	}
	return nil
}

// Unpause lets a paused container go on.
func (c *Container) Unpause(ctx context.Context) error {
	if _, err := c.eng.ContainerUnpause(ctx, c.id(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause %s: %w", c.Role, err)
	}
	return nil
}

// Disconnect takes the container off the run's network: its peers'
// packets to it go nowhere (a partition), its own sockets stay open.
func (c *Container) Disconnect(ctx context.Context) error {
	if c.spec.NetNSOf != nil {
		return fmt.Errorf("partition %s: it shares %s's network; partition %s", c.Role, c.spec.NetNSOf.Role, c.spec.NetNSOf.Role)
	}
	if _, err := c.eng.NetworkDisconnect(ctx, c.st.net.ID, client.NetworkDisconnectOptions{Container: c.id(), Force: true}); err != nil {
		return fmt.Errorf("partition %s: %w", c.Role, err)
	}
	return nil
}

// Connect puts a disconnected container back on the run's network with
// its names. Its peers know it by address (the DNS zone, the sender's
// route), so it must come back at the same one: the engine only takes an
// address it is asked for on a network with a subnet the user chose, so
// the lab asks for none and checks that the engine gave the old one back
// (it gives the lowest free address, which the container's own was).
func (c *Container) Connect(ctx context.Context) error {
	old := c.Addr()
	aliases := append([]string{string(c.Role)}, c.spec.Aliases...)
	_, err := c.eng.NetworkConnect(ctx, c.st.net.ID, client.NetworkConnectOptions{
		Container: c.id(), EndpointConfig: &mnet.EndpointSettings{Aliases: aliases},
	})
	if err != nil {
		return fmt.Errorf("end the partition of %s: %w", c.Role, err)
	}
	if err := c.relocate(ctx, "end the partition of "+string(c.Role), old); err != nil {
		return err
	}
	for _, d := range c.st.dependents(c) {
		if _, err := d.Locate(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Locate finds the container's address and its control port's endpoint
// on this machine again and returns the endpoint. The lab reaches a role
// through its published control port rather than its bridge address
// (which Docker Desktop and remote engines do not route to): the engine
// gives a restarted or reconnected container new host ports, so a role's
// handle asks again when its endpoint stops answering.
func (c *Container) Locate(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.st.address(ctx, c, c.spec); err != nil {
		return "", fmt.Errorf("locate %s: %w", c.Role, err)
	}
	return c.Control, nil
}

// relocate finds c again after op (Locate) and checks it kept its address
// old: its peers know it by address (the zone, the sender's route).
func (c *Container) relocate(ctx context.Context, op, old string) error {
	if _, err := c.Locate(ctx); err != nil {
		return err
	}
	if ip := c.Addr(); ip != old {
		return fmt.Errorf("%s: the engine gave it %s, not its address %s: its peers cannot find it", op, ip, old)
	}
	return nil
}

// Addr is the container's address on the run's network now.
func (c *Container) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.IP
}

func (c *Container) id() string { return c.c.GetContainerID() }

// dependents are the containers that joined c's network namespace.
func (s *Stack) dependents(c *Container) []*Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Container
	for _, o := range s.containers {
		if o.spec.NetNSOf == c {
			out = append(out, o)
		}
	}
	return out
}

// Host is the role whose network namespace c joined ("" for none): when
// that role dies, c cannot be reached on its control port either.
func (c *Container) Host() topology.Role {
	if c.spec.NetNSOf == nil {
		return ""
	}
	return c.spec.NetNSOf.Role
}
