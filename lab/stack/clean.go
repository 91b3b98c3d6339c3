package stack

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
)

// Cleaned counts what Clean removed.
type Cleaned struct{ Containers, Networks int }

// Clean removes every container and network carrying the lab's label,
// whatever run made it: what a killed run left behind. With runID set it
// removes only that run's.
func Clean(ctx context.Context, eng *Engine, runID string) (Cleaned, error) {
	var n Cleaned
	f := make(client.Filters).Add("label", LabelLab+"=1")
	if runID != "" {
		f.Add("label", LabelRun+"="+runID)
	}
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return n, fmt.Errorf("clean: %w", err)
	}
	var errs []error
	// Containers sharing another's network namespace go first.
	for pass := 0; pass < 2; pass++ {
		for _, c := range list.Items {
			joined := len(c.HostConfig.NetworkMode) > 10 && c.HostConfig.NetworkMode[:10] == "container:"
			if joined != (pass == 0) {
				continue
			}
			if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				errs = append(errs, err)
				continue
			}
			n.Containers++
		}
	}
	nets, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return n, errors.Join(append(errs, fmt.Errorf("clean: %w", err))...)
	}
	for _, nw := range nets.Items {
		if _, err := eng.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, err)
			continue
		}
		n.Networks++
	}
	return n, errors.Join(errs...)
}
