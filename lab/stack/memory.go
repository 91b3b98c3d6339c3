package stack

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Memory is the container's resident memory less the page cache: the
// anonymous memory of its processes (its cgroup's "anon" on cgroup v2,
// "total_rss" on v1), what grows when a program keeps what it has seen.
// Files a role writes (its spool, its Maildir) are page cache, which the
// kernel reclaims, and do not count. One sample from the engine's stats.
func (c *Container) Memory(ctx context.Context) (int64, error) {
	res, err := c.eng.ContainerStats(ctx, c.c.GetContainerID(), client.ContainerStatsOptions{})
	if err != nil {
		return 0, fmt.Errorf("memory of %s: %w", c.Role, err)
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("memory of %s: %w", c.Role, err)
	}
	return anonMemory(st.MemoryStats)
}

// anonMemory picks the anonymous memory out of a cgroup's statistics.
func anonMemory(m container.MemoryStats) (int64, error) {
	for _, k := range []string{"anon", "total_rss", "rss"} {
		if v, ok := m.Stats[k]; ok {
			return int64(v), nil
		}
	}
	if m.Usage == 0 {
		return 0, fmt.Errorf("the engine gave no memory statistics (is the memory cgroup controller enabled?)")
	}
	cache := m.Stats["inactive_file"] + m.Stats["total_inactive_file"]
	return int64(m.Usage - min(cache, m.Usage)), nil
}
