package stack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/client"
)

// CleanImages removes the lab's old images (those carrying its label
// whose repository starts with prefix, "smtplab/" for all of them): every
// code change builds new ones, tagged by content, and the old stay. Kept:
// the newest other image of each repository, any image tagged "compose" (what
// docker-compose.yml runs), and the debootstrap'ed Debian bases
// ("-base" repositories, a minute or more to make again) unless all is
// set, when everything goes. Images a container still uses are left, with
// the engine's complaint in the error. It returns the tags removed.
func CleanImages(ctx context.Context, eng *Engine, prefix string, all bool) ([]string, error) {
	f := make(client.Filters).Add("label", LabelLab+"=1")
	list, err := eng.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	type img struct {
		id      string
		created int64
		tags    []string
	}
	byRepo := map[string][]img{}
	for _, s := range list.Items {
		var mine []string
		for _, t := range s.RepoTags {
			if strings.HasPrefix(t, prefix) {
				mine = append(mine, t)
			}
		}
		if len(mine) == 0 {
			continue
		}
		repo, _, _ := strings.Cut(mine[0], ":")
		byRepo[repo] = append(byRepo[repo], img{s.ID, s.Created, mine})
	}
	var removed []string
	var errs []error
	for repo, imgs := range byRepo {
		sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].created > imgs[j].created })
		newest := true // the newest image of the repository not tagged compose
		for _, im := range imgs {
			compose := hasTag(im.tags, "compose")
			keep := !all && (compose || newest || strings.HasSuffix(repo, "-base"))
			if !compose {
				newest = false
			}
			if keep {
				continue
			}
			for _, t := range im.tags {
				if _, err := eng.ImageRemove(ctx, t, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
					errs = append(errs, fmt.Errorf("remove image %s: %w", t, err))
					continue
				}
				removed = append(removed, t)
			}
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.HasSuffix(t, ":"+tag) {
			return true
		}
	}
	return false
}
