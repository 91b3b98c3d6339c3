package topology_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/smtplab/smtplab/lab/topology"
)

// The committed k8s/smtplab.yaml is exactly what Kubernetes generates:
// change the topology, and this fails until the file is regenerated
// (go run ./cmd/lab kubernetes --write).
func TestKubeFileMatchesTopology(t *testing.T) {
	want, err := topology.Kubernetes(topology.KubeSenders)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(topology.KubeFile)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from lab/topology; regenerate it with: go run ./cmd/lab kubernetes --write", topology.KubeFile)
	}
}

// Every document is a Kubernetes object, and each service with a network
// of its own has a headless Service and its pods, hardened as the compose
// file's containers are; the sender is a StatefulSet of the requested
// sending hosts, each serving the identd that shares its network.
func TestKubernetesManifests(t *testing.T) {
	for _, senders := range []int{topology.KubeSenders, 5} {
		t.Run(fmt.Sprintf("senders=%d", senders), func(t *testing.T) {
			b, err := topology.Kubernetes(senders)
			if err != nil {
				t.Fatal(err)
			}
			docs := decodeAll(t, b)
			byKey := map[string]map[string]any{}
			for i, d := range docs {
				api, kind, name := str(d, "apiVersion"), str(d, "kind"), str(d, "metadata", "name")
				if api == "" || kind == "" || name == "" {
					t.Fatalf("document %d: apiVersion %q, kind %q, metadata.name %q: want all three", i, api, kind, name)
				}
				if kind != "Namespace" && str(d, "metadata", "namespace") != topology.KubeNamespace {
					t.Errorf("%s %s: namespace %q, want %q", kind, name, str(d, "metadata", "namespace"), topology.KubeNamespace)
				}
				byKey[kind+"/"+name] = d
			}
			if ns := docs[0]; str(ns, "kind") != "Namespace" || str(ns, "metadata", "name") != topology.KubeNamespace {
				t.Errorf("first document: %s %s, want Namespace %s", str(ns, "kind"), str(ns, "metadata", "name"), topology.KubeNamespace)
			}
			hosts := 0
			for _, s := range topology.Services() {
				if s.NetNSOf != "" {
					// Served by its host's process: no object of its own.
					for _, kind := range []string{"Service", "Deployment", "StatefulSet"} {
						if byKey[kind+"/"+string(s.Name)] != nil {
							t.Errorf("%s %s: %s shares %s's network and is served by its pods", kind, s.Name, s.Name, s.NetNSOf)
						}
					}
					continue
				}
				hosts++
				checkKubeHost(t, byKey, s, senders)
			}
			if want := 1 + 2*hosts; len(docs) != want {
				t.Errorf("%d documents, want %d: the namespace, and a Service and a workload for each of %d hosts", len(docs), want, hosts)
			}
		})
	}
}

// checkKubeHost checks the Service and the workload of s, a service with
// a network of its own.
func checkKubeHost(t *testing.T, byKey map[string]map[string]any, s topology.Service, senders int) {
	name := string(s.Name)
	svc := byKey["Service/"+name]
	if svc == nil {
		t.Errorf("no Service %s", name)
		return
	}
	if got := str(svc, "spec", "clusterIP"); got != "None" {
		t.Errorf("Service %s: clusterIP %q, want None (headless: the name resolves to each pod's own address)", name, got)
	}
	kind, replicas := "Deployment", 1
	if s.Name == topology.Sender {
		kind, replicas = "StatefulSet", senders
	}
	work := byKey[kind+"/"+name]
	if work == nil {
		t.Errorf("no %s %s", kind, name)
		return
	}
	if got := str(work, "spec", "replicas"); got != fmt.Sprint(replicas) {
		t.Errorf("%s %s: replicas %s, want %d", kind, name, got, replicas)
	}
	if kind == "StatefulSet" && str(work, "spec", "serviceName") != name {
		t.Errorf("StatefulSet %s: serviceName %q, want its headless Service %q", name, str(work, "spec", "serviceName"), name)
	}
	podLabels := get(work, "spec", "template", "metadata", "labels")
	for _, labels := range []any{get(svc, "metadata", "labels"), get(work, "metadata", "labels"), podLabels} {
		if str(labels, "smtplab") != "1" || str(labels, "smtplab.role") != name {
			t.Errorf("%s: labels %v, want smtplab=1 and smtplab.role=%s", name, labels, name)
		}
	}
	for what, sel := range map[string]any{"Service": get(svc, "spec", "selector"), kind: get(work, "spec", "selector", "matchLabels")} {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s %s: no selector", what, name)
		}
		for k, v := range m {
			if str(podLabels, k) != fmt.Sprint(v) {
				t.Errorf("%s %s: selector %s=%v does not select its pods (%v)", what, name, k, v, podLabels)
			}
		}
	}

	pod := get(work, "spec", "template", "spec")
	if got := str(pod, "securityContext", "seccompProfile", "type"); got != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile %q, want RuntimeDefault", name, got)
	}
	sysctl := false
	for _, sc := range list(get(pod, "securityContext", "sysctls")) {
		sysctl = sysctl || str(sc, "name") == topology.UnprivilegedPortStart && str(sc, "value") == "0"
	}
	if !sysctl {
		t.Errorf("%s: pod sysctls %v, want %s=0", name, get(pod, "securityContext", "sysctls"), topology.UnprivilegedPortStart)
	}
	emptyDirs := map[string]bool{}
	for _, v := range list(get(pod, "volumes")) {
		if _, ok := get(v, "emptyDir").(map[string]any); ok {
			emptyDirs[str(v, "name")] = true
		}
	}
	containers := list(get(pod, "containers"))
	if len(containers) == 0 {
		t.Errorf("%s: no container", name)
	}
	uid, gid, _ := strings.Cut(topology.RoleUser, ":")
	for _, c := range containers {
		cname := name + "/" + str(c, "name")
		if str(c, "image") != topology.ComposeImage || str(c, "imagePullPolicy") != "Never" {
			t.Errorf("%s: image %q pulled %q, want %s, Never", cname, str(c, "image"), str(c, "imagePullPolicy"), topology.ComposeImage)
		}
		sc := get(c, "securityContext")
		for field, want := range map[string]string{"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": "true",
			"readOnlyRootFilesystem": "true", "allowPrivilegeEscalation": "false"} {
			if got := str(sc, field); got != want {
				t.Errorf("%s: securityContext.%s %q, want %q", cname, field, got, want)
			}
		}
		if drop := strs(get(sc, "capabilities", "drop")); !slices.Equal(drop, []string{"ALL"}) || get(sc, "capabilities", "add") != nil {
			t.Errorf("%s: capabilities %v, want drop [ALL] and nothing added", cname, get(sc, "capabilities"))
		}
		if got, want := str(c, "resources", "limits", "memory"), fmt.Sprintf("%dMi", topology.DefaultMemoryMB); got != want {
			t.Errorf("%s: memory limit %q, want %q", cname, got, want)
		}
		var mounted []string
		for _, m := range list(get(c, "volumeMounts")) {
			mounted = append(mounted, str(m, "mountPath"))
			if !emptyDirs[str(m, "name")] {
				t.Errorf("%s: mount %s: volume %q is not an emptyDir of the pod", cname, str(m, "mountPath"), str(m, "name"))
			}
		}
		if !slices.Equal(mounted, topology.Writable()) {
			t.Errorf("%s: mounts %v, want topology.Writable() %v", cname, mounted, topology.Writable())
		}
	}
	// One process serves the host and every service in its network,
	// each awaiting its spec on its control port, as on the swarm.
	want := []string{"role", "--await", ":" + s.Control}
	for _, o := range topology.Services() {
		if o.NetNSOf == s.Name {
			want = append(want, "--await", ":"+o.Control)
		}
	}
	if len(containers) == 1 {
		if args := strs(get(containers[0], "args")); !slices.Equal(args, want) {
			t.Errorf("%s: args %q, want %q", name, args, want)
		}
	}
	if s.Name == topology.Sender {
		identd, _ := topology.ByName(topology.Identd)
		var args []string
		if len(containers) == 1 {
			args = strs(get(containers[0], "args"))
		}
		if !strings.Contains(strings.Join(args, " "), "--await :"+identd.Control) {
			t.Errorf("sender: %d container(s), args %q; want one, serving the identd too (--await :%s)", len(containers), args, identd.Control)
		}
	}
}

func TestKubernetesNeedsASender(t *testing.T) {
	if _, err := topology.Kubernetes(0); err == nil {
		t.Error("Kubernetes(0): no error, want one: a lab needs a sending host")
	}
}

// kubectl's kustomize reads the committed file as Kubernetes objects and
// writes each back (offline: kubectl apply --dry-run=client needs an API
// server). Skipped where kubectl is missing.
func TestKubeFileKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl is missing, skipping: %v", err)
	}
	file, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(topology.KubeFile)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Base(topology.KubeFile)
	if err := os.WriteFile(filepath.Join(dir, base), file, 0o644); err != nil {
		t.Fatal(err)
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + base + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "no-cluster")) // no cluster is asked
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.Bytes())
	}
	objects := func(docs []map[string]any) []string {
		var keys []string
		for _, d := range docs {
			keys = append(keys, str(d, "kind")+"/"+str(d, "metadata", "namespace")+"/"+str(d, "metadata", "name"))
		}
		slices.Sort(keys)
		return keys
	}
	in, back := decodeAll(t, file), decodeAll(t, out)
	if len(back) != len(in) || !slices.Equal(objects(back), objects(in)) {
		t.Errorf("kubectl kustomize gave %d objects %v, want the file's %d %v", len(back), objects(back), len(in), objects(in))
	}
	// The sender's arguments stay strings (":8113", not a number or a map).
	for _, d := range back {
		if str(d, "kind") == "StatefulSet" {
			identd, _ := topology.ByName(topology.Identd)
			args := strs(get(list(get(d, "spec", "template", "spec", "containers"))[0], "args"))
			if !slices.Contains(args, ":"+identd.Control) {
				t.Errorf("after kubectl kustomize, the sender's args %q lack :%s", args, identd.Control)
			}
		}
	}
}

// decodeAll is every YAML document of b, each a map.
func decodeAll(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("document %d does not parse: %v", len(docs), err)
		}
		if d == nil {
			t.Fatalf("document %d is empty", len(docs))
		}
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		t.Fatal("no YAML document")
	}
	return docs
}

// get follows keys through nested maps; nil where one is missing.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// str is the scalar at keys as text ("" where missing).
func str(v any, keys ...string) string {
	x := get(v, keys...)
	if x == nil {
		return ""
	}
	return fmt.Sprint(x)
}

func list(v any) []any { l, _ := v.([]any); return l }

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
