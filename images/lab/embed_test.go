package lab

import (
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/topology"
)

// Every folder a Go role writes is in the image, owned by the role's
// user: a volume over it starts as its copy, and a role running as
// nobody on a read-only root could write nowhere else.
func TestImageHoldsWritableFolders(t *testing.T) {
	lines := strings.Split(string(Dockerfile), "\n")
	for _, dir := range topology.Writable() {
		want := "COPY --chown=" + topology.RoleUser + " empty/ " + dir + "/"
		found := false
		for _, l := range lines {
			found = found || strings.TrimSpace(l) == want
		}
		if !found {
			t.Errorf("images/lab/Dockerfile has no line %q", want)
		}
	}
}
