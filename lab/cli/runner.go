package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/topology"
)

// runnerCmd is docker-compose.yml's one-shot runner: it configures the
// awaiting roles, runs the scenario named by SMTPLAB_SCENARIO (or
// --scenario), writes results/<run>/ and exits with the run's code.
func runnerCmd() *cobra.Command {
	var path, results string
	c := &cobra.Command{
		Use:    "runner [--scenario FILE]",
		Short:  "drive a lab that docker compose started (the compose file's runner service)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				path = os.Getenv("SMTPLAB_SCENARIO")
			}
			if path == "" {
				path = topology.DefaultScenario
			}
			// Compose runs the Go roles only: refuse a real MTA's scenario
			// before anything runs (also its Go-model comparison).
			if sc, err := loadScenario(path); err == nil {
				if err := lab.ComposeCan(sc); err != nil {
					return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v", path, err)}
				}
			}
			return runWith(cmd, path, results, lab.RunCompose)
		},
	}
	c.Flags().StringVar(&path, "scenario", "", "the scenario (default: $SMTPLAB_SCENARIO, else "+topology.DefaultScenario+")")
	c.Flags().StringVar(&results, "results", "results", "folder for the run's results")
	return c
}
