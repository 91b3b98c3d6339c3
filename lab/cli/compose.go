package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/topology"
)

// composeCmd prints, or writes, docker-compose.yml as lab/topology makes it.
func composeCmd() *cobra.Command {
	var write bool
	c := &cobra.Command{
		Use:   "compose [--write]",
		Short: "print docker-compose.yml, generated from the lab's topology (--write: update the file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := topology.Compose()
			if err != nil {
				return err
			}
			if !write {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := os.WriteFile(topology.ComposeFile, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", topology.ComposeFile)
			return nil
		},
	}
	c.Flags().BoolVar(&write, "write", false, "write "+topology.ComposeFile+" in the current folder")
	return c
}
