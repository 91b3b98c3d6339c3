package stack

import (
	"context"
	"strings"
	"testing"
)

// A DOCKER_HOST that does not answer is an error at once, naming it; the
// lab never falls back to another engine (testcontainers-go would use
// the default socket).
func TestUnreachableDockerHost(t *testing.T) {
	for _, host := range []string{"unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"} {
		t.Setenv("DOCKER_HOST", host)
		eng, err := Connect(context.Background())
		if err == nil {
			eng.Close()
			t.Fatalf("DOCKER_HOST %s: connected to %s", host, eng.DaemonHost())
		}
		if want := "docker engine not reachable at " + host + " (DOCKER_HOST)"; !strings.Contains(err.Error(), want) {
			t.Errorf("DOCKER_HOST %s: %v, want %q", host, err, want)
		}
	}
}
