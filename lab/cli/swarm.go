package cli

import (
	"fmt"
	"os"
	"path/filepath"

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
	file, err := onDisk(path)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(file))
	code, err := lab.RunOnSwarm(cmd.Context(), file, sc, lab.SwarmOptions{ResultsDir: results, ScenarioPath: path,
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

// onDisk is a copy of the scenario at path in a folder of its own, to
// bind into the runner: a shipped scenario the executable carries has no
// file of its own, and the runner must read what was checked here. The
// caller removes the folder.
func onDisk(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		data, err = shippedScenario(path)
	}
	if err != nil {
		return "", &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	dir, err := os.MkdirTemp("", "smtplab-swarm-")
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, filepath.Base(path))
	if filepath.Ext(file) != ".yaml" {
		file += ".yaml"
	}
	return file, os.WriteFile(file, data, 0o644)
}
