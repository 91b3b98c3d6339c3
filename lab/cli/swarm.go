package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab"
)

// The engines `lab run --engine` takes.
const (
	engineDocker = "docker"
	engineSwarm  = "swarm"
)

// runOnSwarm runs the scenario at path on Docker Swarm (lab.RunOnSwarm):
// the runner inside the swarm prints the report and writes the results,
// and its exit code is the command's. A scenario the swarm cannot run is
// refused before anything starts.
func runOnSwarm(cmd *cobra.Command, path, results string) error {
	sc, err := loadScenario(path)
	if err != nil {
		return &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	if err := lab.SwarmCan(sc); err != nil {
		return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v", path, err)}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		text, err = shippedScenario(path)
	}
	if err != nil {
		return &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	code, err := lab.RunOnSwarm(cmd.Context(), text, sc, lab.SwarmOptions{ResultsDir: results, ScenarioPath: path,
		Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Progress: cmd.ErrOrStderr()})
	if err != nil {
		if code <= 0 {
			code = 1
		}
		return &ExitError{Code: code, Msg: "lab: " + err.Error()}
	}
	if code != 0 {
		return &ExitError{Code: code, Msg: fmt.Sprintf("lab: the swarm run's runner exited %d (its report above)", code)}
	}
	return nil
}
