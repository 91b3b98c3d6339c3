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
	var path, results, engine string
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
			can, run := lab.ComposeCan, lab.Runner(lab.RunCompose)
			switch engine {
			case "compose":
			case engineSwarm:
				can, run = lab.SwarmCan, lab.RunSwarm
			default:
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab runner: --engine %q: want compose or %s", engine, engineSwarm)}
			}
			// Compose and swarm run the Go roles only: refuse a real MTA's
			// scenario before anything runs (also its Go-model comparison).
			if sc, err := loadScenario(path); err == nil {
				if err := can(sc); err != nil {
					return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v", path, err)}
				}
			}
			return runWith(cmd, path, results, run)
		},
	}
	c.Flags().StringVar(&path, "scenario", "", "the scenario (default: $SMTPLAB_SCENARIO, else "+topology.DefaultScenario+")")
	c.Flags().StringVar(&results, "results", "results", "folder for the run's results")
	c.Flags().StringVar(&engine, "engine", "compose", "what started the roles: compose (docker-compose.yml) or swarm (lab run --engine swarm)")
	return c
}
