package stack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// CleanImages keeps the one tagged compose and the newest other image of
// a repository (built within a second, any of a, b, c may count as the
// newest), removes the others, and with all removes every one.
func TestCleanImages(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	repo := fmt.Sprintf("smtplabtest/cleanimages%d", time.Now().UnixNano()%1e9)
	build := func(tag string, n int) {
		var ctxTar bytes.Buffer
		tw := tar.NewWriter(&ctxTar)
		df := []byte(fmt.Sprintf("FROM scratch\nLABEL smtplab.test=%d\n", n))
		tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
		tw.Write(df)
		tw.Close()
		res, err := eng.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{Tags: []string{repo + ":" + tag}, Remove: true,
			Labels: map[string]string{stack.LabelLab: "1"}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for i, tag := range []string{"compose", "a", "b", "c"} {
		build(tag, i)
	}
	t.Cleanup(func() { stack.CleanImages(context.Background(), eng, repo, true) })

	removed, err := stack.CleanImages(ctx, eng, repo, false)
	if err != nil {
		t.Fatal(err)
	}
	left := tags(t, eng, repo)
	if !slices.Contains(left, repo+":compose") || len(left) != 2 || len(removed) != 2 {
		t.Errorf("removed %v, left %v; want the compose tag and one other left", removed, left)
	}
	if _, err := stack.CleanImages(ctx, eng, repo, true); err != nil {
		t.Fatal(err)
	}
	if left := tags(t, eng, repo); len(left) != 0 {
		t.Errorf("with all: %v left", left)
	}
}

func tags(t *testing.T, eng *stack.Engine, repo string) []string {
	t.Helper()
	list, err := eng.ImageList(context.Background(), client.ImageListOptions{Filters: make(client.Filters).Add("reference", repo)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.RepoTags...)
	}
	return out
}
