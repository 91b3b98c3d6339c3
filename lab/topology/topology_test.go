package topology

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The committed docker-compose.yml is exactly what Compose generates:
// change the topology, and this fails until the file is regenerated
// (go run ./cmd/lab compose --write).
func TestComposeFileMatchesTopology(t *testing.T) {
	want, err := Compose()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from lab/topology; regenerate it with: go run ./cmd/lab compose --write", ComposeFile)
	}
	for _, s := range Services() {
		if !bytes.Contains(got, []byte("\n  "+s.Name+":\n")) {
			t.Errorf("service %s missing from %s", s.Name, ComposeFile)
		}
	}
}

// Every service joining another's network comes after it, and that one
// exposes the joiner's control port.
func TestServicesOrder(t *testing.T) {
	seen := map[Role]Service{}
	for _, s := range Services() {
		if s.NetNSOf != "" {
			host, ok := seen[s.NetNSOf]
			if !ok {
				t.Errorf("%s joins %s, which starts after it", s.Name, s.NetNSOf)
			}
			exposed := false
			for _, p := range host.Exposes {
				exposed = exposed || p == s.Control
			}
			if !exposed {
				t.Errorf("%s's control port %s is not exposed by %s", s.Name, s.Control, s.NetNSOf)
			}
		}
		seen[s.Name] = s
	}
}
