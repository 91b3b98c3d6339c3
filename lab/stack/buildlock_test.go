package stack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// sayings collects what a build says through its logf.
type sayings chan string

func (s sayings) logf(format string, args ...any) { s <- fmt.Sprintf(format, args...) }

// builtResult is what a build running in a goroutine returned.
type builtResult struct {
	img stack.Image
	err error
}

// buildAside runs build in a goroutine, its logf saying into the returned
// sayings.
func buildAside(build func(logf func(string, ...any)) (stack.Image, error)) (sayings, chan builtResult) {
	said := make(sayings, 100)
	done := make(chan builtResult, 1)
	go func() {
		img, err := build(said.logf)
		done <- builtResult{img, err}
	}()
	return said, done
}

// holdLocks takes the build locks of refs, as another process building
// them would; the returned function releases them.
func holdLocks(t *testing.T, refs ...string) func() {
	t.Helper()
	var unlocks []func()
	for _, ref := range refs {
		unlock, err := stack.ImageLock(context.Background(), ref, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, unlock)
	}
	return func() {
		for _, u := range unlocks {
			u()
		}
	}
}

// A run whose images exist never waits for another process's build: with
// the build locks of every one of its images held, as a process building
// them would hold them, the build returns the images it found, while the
// locks are still held, and says nothing of waiting.
func TestExistingImagesTakeNoLock(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	binary, version, err := stack.CompileLab(ctx, eng)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := stack.LabImage(ctx, eng, binary, version, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	noWait := func(t *testing.T, want stack.Image, refs []string, build func(logf func(string, ...any)) (stack.Image, error)) {
		t.Helper()
		release := holdLocks(t, refs...)
		defer release()
		said, done := buildAside(build)
		for {
			select {
			case line := <-said:
				if strings.Contains(line, "waiting") {
					t.Fatalf("waits for a lock though its images exist: %q", line)
				}
				t.Logf("said %q", line)
				continue
			case r := <-done:
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.img.Built || r.img.Ref != want.Ref || r.img.ID != want.ID {
					t.Errorf("got %+v, want %+v reused", r.img, want)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("no answer in two minutes with the locks held (a hang, not a timing assertion)")
			}
			return
		}
	}

	t.Run("lab", func(t *testing.T) {
		noWait(t, lab, []string{lab.Ref}, func(logf func(string, ...any)) (stack.Image, error) {
			return stack.LabImage(ctx, eng, binary, version, logf)
		})
	})
	t.Run("with-lab", func(t *testing.T) {
		// The lab's own image stands for a user's image to play the sender.
		over, err := stack.LabOver(ctx, eng, lab, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		// Only this test puts the lab over the lab's own image.
		t.Cleanup(func() {
			eng.ImageRemove(context.Background(), over.Ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		})
		noWait(t, over, []string{over.Ref}, func(logf func(string, ...any)) (stack.Image, error) {
			return stack.LabOver(ctx, eng, lab, logf)
		})
	})
	t.Run("postfix", func(t *testing.T) {
		stacktest.Debootstrap(t)
		m := stack.MTAs["postfix"]
		img, err := m.Build(ctx, eng, binary, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		noWait(t, img, []string{m.BaseRef(), img.Ref}, func(logf func(string, ...any)) (stack.Image, error) {
			return m.Build(ctx, eng, binary, logf)
		})
	})
}

// A build that must wait for another process's build of the same image
// says what it waits for, waits while the lock is held, then proceeds
// once it is released: it builds the image when the other process left
// it unbuilt, and uses the other's image when it was built meanwhile.
func TestBuildWaitsForLockHolder(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	for _, othersBuild := range []bool{false, true} {
		t.Run(fmt.Sprintf("others build %v", othersBuild), func(t *testing.T) {
			// Not a program: the image is only built, never run.
			binary := []byte(fmt.Sprintf("%s %d", t.Name(), time.Now().UnixNano()))
			ref := stack.LabRef(binary)
			t.Cleanup(func() {
				eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			})
			release := holdLocks(t, ref)
			defer release()
			said, done := buildAside(func(logf func(string, ...any)) (stack.Image, error) {
				return stack.LabImage(ctx, eng, binary, "test", logf)
			})
			select {
			case line := <-said:
				if want := "waiting for another process building " + ref; !strings.Contains(line, want) {
					t.Fatalf("says %q first, want %q", line, want)
				}
			case r := <-done:
				t.Fatalf("returned (%+v, %v) while another process held the lock", r.img, r.err)
			case <-time.After(2 * time.Minute):
				t.Fatal("said nothing in two minutes while the lock was held (a hang, not a timing assertion)")
			}
			var othersID string
			if othersBuild {
				othersID = buildScratch(t, eng, ref)
			}
			select {
			case r := <-done:
				t.Fatalf("returned (%+v, %v) while another process held the lock", r.img, r.err)
			default:
			}
			release()
			var r builtResult
			select {
			case r = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("no answer in two minutes after the lock was released (a hang, not a timing assertion)")
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			got, err := eng.ImageInspect(ctx, ref)
			if err != nil {
				t.Fatalf("no image %s after the build: %v", ref, err)
			}
			switch {
			case r.img.ID != got.ID:
				t.Errorf("returned image %s, the engine has %s as %s", r.img.ID, got.ID, ref)
			case othersBuild && (r.img.Built || r.img.ID != othersID):
				t.Errorf("built %s again (%+v) when the other process had built it as %s", ref, r.img, othersID)
			case !othersBuild && !r.img.Built:
				t.Errorf("did not build %s, left unbuilt by the other process: %+v", ref, r.img)
			}
		})
	}
}

// buildScratch builds an empty image tagged ref, as another process
// would, and returns its ID.
func buildScratch(t *testing.T, eng *stack.Engine, ref string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte(fmt.Sprintf("FROM scratch\nLABEL smtplab.test=%q\n", t.Name()))
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
	tw.Write(df)
	tw.Close()
	id, err := stack.BuildImage(context.Background(), eng, &buf, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
