package stack

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// TagAs gives img a second name: docker-compose.yml runs the lab's image
// by a fixed name (topology.ComposeImage), which `lab images` points at
// the current build.
func (img Image) TagAs(ctx context.Context, eng *Engine, ref string) error {
	if _, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: img.ID, Target: ref}); err != nil {
		return fmt.Errorf("tag %s as %s: %w", img.Ref, ref, err)
	}
	return nil
}
