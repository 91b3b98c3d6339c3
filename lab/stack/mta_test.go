package stack_test

import (
	"context"
	"testing"

	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// The real MTAs' images are tagged by content: a second build with
// nothing changed reuses both layers.
func TestMTAImagesReused(t *testing.T) {
	eng := stacktest.Engine(t)
	stacktest.Debootstrap(t)
	ctx := context.Background()
	_, first, err := stack.BuildImages(ctx, eng, []string{"courier", "postfix", "exim"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := stack.BuildImages(ctx, eng, []string{"courier", "postfix", "exim"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"courier", "postfix", "exim"} {
		if second[n].Built || second[n].Ref != first[n].Ref || second[n].ID != first[n].ID {
			t.Errorf("%s rebuilt: first %+v, second %+v", n, first[n], second[n])
		}
		if _, err := eng.ImageInspect(ctx, stack.MTAs[n].BaseRef()); err != nil {
			t.Errorf("%s base image %s: %v", n, stack.MTAs[n].BaseRef(), err)
		}
	}
	if _, _, err := stack.BuildImages(ctx, eng, []string{"sendmail"}, t.Logf); err == nil {
		t.Error("no error for an MTA the lab does not have")
	}
}
