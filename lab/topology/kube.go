package topology

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// KubeFile is the generated file of Kubernetes manifests, from the top of
// the repository: the lab's roles as Kubernetes objects (Kubernetes), as
// docker-compose.yml is the lab for Compose.
const KubeFile = "k8s/smtplab.yaml"

// KubeNamespace holds every object of KubeFile.
const KubeNamespace = "smtplab"

// KubeSenders is how many sending hosts KubeFile runs: the sender
// replicas of scenarios/swarm.yaml (sender.replicas 2).
const KubeSenders = 2

const kubeHeader = `# The lab's roles on Kubernetes, as the swarm engine maps them (docs/SWARM.md).
# Generated from lab/topology by ` + "`go run ./cmd/lab kubernetes --write`" + `: do not edit;
# a test fails when this file and the Go topology differ. It has been checked
# with kubectl kustomize only: it has not been applied to a cluster.
#
#   go run ./cmd/lab images --mta none           # build smtplab/lab:compose locally
#   kind load docker-image smtplab/lab:compose   # or, on each node:
#     docker save smtplab/lab:compose | ctr -n k8s.io images import -
#   kubectl apply -f k8s/smtplab.yaml
#   kubectl delete namespace smtplab             # removes every object below
#
# The image is never pulled (imagePullPolicy: Never), so each node must hold
# it. Every role waits for its configuration on its control port; the sender
# is a StatefulSet of %d pods (sender-0.sender ...), each serving its own identd
# (go run ./cmd/lab kubernetes --senders N prints another count).
#
# Not here: the runner, which configures the roles and drives a run. On
# Kubernetes it would be a Job (restartPolicy Never, backoffLimit 0) running
# lab runner --engine swarm; that runner finds the roles by the swarm's DNS
# names, tasks.dns, tasks.receiver and tasks.sender, which a cluster does not
# have (a headless Service answers to the bare name: dns, sender...). Until
# its lookup takes those names, a runner Job would only wait and fail.
`

// Kubernetes returns KubeFile's manifests for the topology, with senders
// sending hosts: the namespace, then for each service that has a network
// namespace of its own (dns, receiver, sender) a headless Service and its
// pods. Every name resolves to its pods' own addresses, as with the
// swarm's dnsrr: the receiver's checks read the client's real address.
// dns and receiver are Deployments of one pod; the sender is a StatefulSet
// of senders pods with stable names, serving the identd that shares its
// network in the same process (AwaitCommand), as on the swarm. Each pod is
// hardened as docker-compose.yml's containers are.
func Kubernetes(senders int) ([]byte, error) {
	if senders < 1 {
		return nil, fmt.Errorf("kubernetes: %d sending hosts: want at least 1", senders)
	}
	uid, gid, err := roleIDs()
	if err != nil {
		return nil, err
	}
	docs := []kubeObject{{APIVersion: "v1", Kind: "Namespace", Metadata: kubeMeta{Name: KubeNamespace, Labels: map[string]string{
		"smtplab": "1",
		// The API server refuses a pod less hardened than Pod Security's
		// restricted profile, which these meet (the sysctl is one it allows).
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}}
	for _, s := range Services() {
		if s.NetNSOf != "" {
			continue // served by the host whose network it shares
		}
		labels := map[string]string{"smtplab": "1", "smtplab.role": string(s.Name)}
		meta := kubeMeta{Name: string(s.Name), Namespace: KubeNamespace, Labels: labels}
		selector := map[string]string{"smtplab.role": string(s.Name)}
		svc := kubeServiceSpec{ClusterIP: "None", Selector: selector}
		for _, p := range kubePorts(s) {
			svc.Ports = append(svc.Ports, kubeServicePort{Name: p.Name, Port: p.ContainerPort, Protocol: p.Protocol})
		}
		docs = append(docs, kubeObject{APIVersion: "v1", Kind: "Service", Metadata: meta, Spec: svc})

		work := kubeWorkloadSpec{Replicas: 1, Selector: kubeSelector{MatchLabels: selector},
			Template: kubePodTemplate{Metadata: kubeMeta{Labels: labels}, Spec: kubePod(s, uid, gid)}}
		kind := "Deployment"
		if s.Name == Sender {
			// Stable pod names, resolvable one by one (sender-0.sender),
			// all started at once as the swarm starts its replicas.
			kind, work.Replicas, work.ServiceName, work.PodManagementPolicy = "StatefulSet", senders, string(s.Name), "Parallel"
		} else {
			// Never two pods of a role during a rollout: the runner
			// takes the one address its name resolves to.
			work.Strategy = &kubeStrategy{Type: "Recreate"}
		}
		docs = append(docs, kubeObject{APIVersion: "apps/v1", Kind: kind, Metadata: meta, Spec: work})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, kubeHeader, senders)
	for i, d := range docs {
		body, err := yaml.MarshalWithOptions(d, yaml.IndentSequence(true))
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %s %s: %w", d.Kind, d.Metadata.Name, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(body)
	}
	return b.Bytes(), nil
}

// roleIDs are RoleUser's uid and gid.
func roleIDs() (uid, gid int64, err error) {
	u, g, _ := strings.Cut(RoleUser, ":")
	if uid, err = strconv.ParseInt(u, 10, 64); err == nil {
		gid, err = strconv.ParseInt(g, 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("kubernetes: RoleUser %q: want uid:gid: %w", RoleUser, err)
	}
	return uid, gid, nil
}

// kubePod is the pod of a host of s: one container of the lab's image
// running AwaitCommand as RoleUser, with no capability, no privilege
// escalation, a read-only root, an emptyDir for each Writable folder
// (created world-writable, so RoleUser writes it), the sysctl that lets
// it bind 25, 53 and 113, and the memory limit the compose file gives.
func kubePod(s Service, uid, gid int64) kubePodSpec {
	no := false
	c := kubeContainer{
		Name: string(s.Name), Image: ComposeImage, ImagePullPolicy: "Never", // loaded into each node, never pulled
		Args: s.AwaitCommand(), Ports: kubePorts(s),
		SecurityContext: kubeContainerSecurity{RunAsUser: uid, RunAsGroup: gid, RunAsNonRoot: true, ReadOnlyRootFilesystem: true,
			AllowPrivilegeEscalation: false, Capabilities: kubeCapabilities{Drop: []string{"ALL"}}},
		Resources: kubeResources{
			Limits: map[string]string{"memory": fmt.Sprintf("%dMi", DefaultMemoryMB)},
			// A limit that reserves nothing, as the docker engine's: with
			// no request, Kubernetes would reserve the whole limit.
			Requests: map[string]string{"memory": "0"},
		},
	}
	p := kubePodSpec{
		AutomountServiceAccountToken: &no, // a role never talks to the API server
		SecurityContext: kubePodSecurity{SeccompProfile: kubeSeccomp{Type: "RuntimeDefault"},
			Sysctls: []kubeSysctl{{Name: UnprivilegedPortStart, Value: "0"}}},
	}
	for _, dir := range Writable() {
		name := strings.ReplaceAll(strings.Trim(dir, "/"), "/", "-")
		c.VolumeMounts = append(c.VolumeMounts, kubeMount{Name: name, MountPath: dir})
		p.Volumes = append(p.Volumes, kubeVolume{Name: name})
	}
	p.Containers = []kubeContainer{c}
	return p
}

// kubePorts are the ports a host of s listens on: each shared service's
// own (DNS's on UDP and TCP) and its control port. A headless Service
// proxies nothing, so these name the ports; they open none.
func kubePorts(s Service) []kubePort {
	var out []kubePort
	for _, o := range s.Sharing() {
		if o.Listen != "" {
			port, _ := strconv.Atoi(o.Port())
			if o.Name == DNS {
				out = append(out, kubePort{Name: string(o.Name), ContainerPort: port, Protocol: "UDP"})
				out = append(out, kubePort{Name: string(o.Name) + "-tcp", ContainerPort: port, Protocol: "TCP"})
			} else {
				out = append(out, kubePort{Name: string(o.Name), ContainerPort: port, Protocol: "TCP"})
			}
		}
		name := "control"
		if o.Name != s.Name {
			name = string(o.Name) + "-control"
		}
		control, _ := strconv.Atoi(o.Control)
		out = append(out, kubePort{Name: name, ContainerPort: control, Protocol: "TCP"})
	}
	return out
}

// The objects' fields, in the order Kubernetes documents them; only what
// the lab sets (no k8s.io/api: plain structs, written by the module's
// YAML library).
type kubeObject struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   kubeMeta `yaml:"metadata"`
	Spec       any      `yaml:"spec,omitempty"`
}

type kubeMeta struct {
	Name      string            `yaml:"name,omitempty"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
}

type kubeServiceSpec struct {
	ClusterIP string            `yaml:"clusterIP"`
	Selector  map[string]string `yaml:"selector"`
	Ports     []kubeServicePort `yaml:"ports"`
}

type kubeServicePort struct {
	Name     string `yaml:"name"`
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"`
}

// kubeWorkloadSpec is a Deployment's spec or a StatefulSet's.
type kubeWorkloadSpec struct {
	ServiceName         string          `yaml:"serviceName,omitempty"`
	Replicas            int             `yaml:"replicas"`
	PodManagementPolicy string          `yaml:"podManagementPolicy,omitempty"`
	Strategy            *kubeStrategy   `yaml:"strategy,omitempty"`
	Selector            kubeSelector    `yaml:"selector"`
	Template            kubePodTemplate `yaml:"template"`
}

type kubeStrategy struct {
	Type string `yaml:"type"`
}

type kubeSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type kubePodTemplate struct {
	Metadata kubeMeta    `yaml:"metadata"`
	Spec     kubePodSpec `yaml:"spec"`
}

type kubePodSpec struct {
	AutomountServiceAccountToken *bool           `yaml:"automountServiceAccountToken,omitempty"`
	SecurityContext              kubePodSecurity `yaml:"securityContext"`
	Containers                   []kubeContainer `yaml:"containers"`
	Volumes                      []kubeVolume    `yaml:"volumes"`
}

type kubePodSecurity struct {
	SeccompProfile kubeSeccomp  `yaml:"seccompProfile"`
	Sysctls        []kubeSysctl `yaml:"sysctls"`
}

type kubeSeccomp struct {
	Type string `yaml:"type"`
}

type kubeSysctl struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type kubeContainer struct {
	Name            string                `yaml:"name"`
	Image           string                `yaml:"image"`
	ImagePullPolicy string                `yaml:"imagePullPolicy"`
	Args            []string              `yaml:"args"`
	Ports           []kubePort            `yaml:"ports"`
	SecurityContext kubeContainerSecurity `yaml:"securityContext"`
	Resources       kubeResources         `yaml:"resources"`
	VolumeMounts    []kubeMount           `yaml:"volumeMounts"`
}

type kubePort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type kubeContainerSecurity struct {
	RunAsUser                int64            `yaml:"runAsUser"`
	RunAsGroup               int64            `yaml:"runAsGroup"`
	RunAsNonRoot             bool             `yaml:"runAsNonRoot"`
	ReadOnlyRootFilesystem   bool             `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation bool             `yaml:"allowPrivilegeEscalation"` // written false: no-new-privileges
	Capabilities             kubeCapabilities `yaml:"capabilities"`
}

type kubeCapabilities struct {
	Drop []string `yaml:"drop"`
}

type kubeResources struct {
	Limits   map[string]string `yaml:"limits"`
	Requests map[string]string `yaml:"requests"`
}

type kubeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

// kubeVolume is an emptyDir: the folder lives as long as its pod, as a
// swarm task's anonymous volume lives with its task.
type kubeVolume struct {
	Name     string   `yaml:"name"`
	EmptyDir struct{} `yaml:"emptyDir"`
}
