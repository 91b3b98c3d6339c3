package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// kubernetesCmd prints, or writes, k8s/smtplab.yaml as lab/topology makes
// it: the lab's roles as Kubernetes objects, the sender as --senders pods.
func kubernetesCmd() *cobra.Command {
	var write bool
	var senders int
	c := &cobra.Command{
		Use:   "kubernetes [--write] [--senders N]",
		Short: "print Kubernetes manifests of the lab's roles, generated from its topology (--write: update " + topology.KubeFile + ")",
		Long: "Print the lab's roles as Kubernetes objects in the namespace " + topology.KubeNamespace + ": a headless Service and\n" +
			"a Deployment for dns and for the receiver, and a StatefulSet of --senders sending hosts, each\n" +
			"serving its identd. No runner: see docs/SWARM.md. With --write, update " + topology.KubeFile + ",\n" +
			"which keeps the default number of sending hosts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if senders < 1 || senders > scenario.MaxReplicas {
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab kubernetes: --senders %d: must be 1 to %d, as sender.replicas", senders, scenario.MaxReplicas)}
			}
			if write && senders != topology.KubeSenders {
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab kubernetes: --write with --senders %d: %s keeps %d sending hosts, as a test checks; print the others instead: go run ./cmd/lab kubernetes --senders %d | kubectl apply -f -",
					senders, topology.KubeFile, topology.KubeSenders, senders)}
			}
			b, err := topology.Kubernetes(senders)
			if err != nil {
				return err
			}
			if !write {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			file := filepath.FromSlash(topology.KubeFile)
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(file, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", topology.KubeFile)
			return nil
		},
	}
	c.Flags().BoolVar(&write, "write", false, "write "+topology.KubeFile+" in the current folder")
	c.Flags().IntVar(&senders, "senders", topology.KubeSenders, "sending hosts: the sender StatefulSet's replicas (the scenario's sender.replicas)")
	return c
}
