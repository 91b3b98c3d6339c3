package stack

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/moby/moby/client"
	"github.com/smtplab/smtplab/lab/topology"
)

// Running is one running role's container, found by label.
type Running struct {
	Role        topology.Role
	RunID       string
	ContainerID string
	Control     string // base URL of its control port, from this machine
}

// FindRunning lists the running containers of role (all runs, or runID's)
// with their control port as mapped on this machine.
func FindRunning(ctx context.Context, eng *Engine, role topology.Role, runID string) ([]Running, error) {
	f := make(client.Filters).Add("label", LabelLab+"=1", LabelRole+"="+string(role)).Add("status", "running")
	if runID != "" {
		f.Add("label", LabelRun+"="+runID)
	}
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list %s containers: %w", role, err)
	}
	port, _ := strconv.Atoi(topology.ControlPort)
	host := os.Getenv("TESTCONTAINERS_HOST_OVERRIDE")
	if host == "" {
		host = "127.0.0.1"
	}
	var out []Running
	for _, c := range list.Items {
		for _, p := range c.Ports {
			if int(p.PrivatePort) == port && p.PublicPort != 0 {
				out = append(out, Running{Role: role, RunID: c.Labels[LabelRun], ContainerID: c.ID,
					Control: fmt.Sprintf("http://%s:%d", host, p.PublicPort)})
				break
			}
		}
	}
	return out, nil
}
