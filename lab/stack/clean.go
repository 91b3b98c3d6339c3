package stack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"
)

// Leftovers are the lab's containers and networks found on the engine.
type Leftovers struct {
	Containers []string // IDs; those in another's network namespace first
	Networks   []string // IDs
}

// Find lists every container and network carrying the lab's label; with
// runID set, only that run's.
func Find(ctx context.Context, eng *Engine, runID string) (Leftovers, error) {
	var l Leftovers
	f := make(client.Filters).Add("label", LabelLab+"=1")
	if runID != "" {
		f.Add("label", LabelRun+"="+runID)
	}
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return l, fmt.Errorf("list containers: %w", err)
	}
	var rest []string
	for _, c := range list.Items {
		if strings.HasPrefix(c.HostConfig.NetworkMode, "container:") {
			l.Containers = append(l.Containers, c.ID)
		} else {
			rest = append(rest, c.ID)
		}
	}
	l.Containers = append(l.Containers, rest...)
	nets, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return l, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		l.Networks = append(l.Networks, n.ID)
	}
	return l, nil
}

// Clean removes every container and network carrying the lab's label
// (with runID set, only that run's): what a killed run left behind. It
// returns what it removed.
func Clean(ctx context.Context, eng *Engine, runID string) (Leftovers, error) {
	found, err := Find(ctx, eng, runID)
	if err != nil {
		return Leftovers{}, fmt.Errorf("clean: %w", err)
	}
	var done Leftovers
	var errs []error
	for _, id := range found.Containers {
		if _, err := eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("clean: %w", err))
			continue
		}
		done.Containers = append(done.Containers, id)
	}
	for _, id := range found.Networks {
		if _, err := eng.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("clean: %w", err))
			continue
		}
		done.Networks = append(done.Networks, id)
	}
	return done, errors.Join(errs...)
}
