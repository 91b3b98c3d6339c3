package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	smtplab "github.com/smtplab/smtplab"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
)

// loadScenario loads the scenario file at p. When there is no such file
// and p names a shipped scenario ("fast.yaml", "scenarios/fast.yaml",
// "fast"), it is that one as the executable carries it (smtplab.Scenarios):
// `lab run fast.yaml`, and `lab` alone, run in any folder. A file of that
// name in the folder wins over the shipped one.
func loadScenario(p string) (scenario.Scenario, error) {
	_, err := os.Stat(p)
	if !errors.Is(err, fs.ErrNotExist) {
		return scenario.Load(p)
	}
	clean := filepath.ToSlash(filepath.Clean(p))
	if dir := path.Dir(clean); dir != "." && dir != "scenarios" {
		return scenario.Load(p)
	}
	data, err := shippedScenario(p)
	if err != nil {
		return scenario.Scenario{}, err
	}
	return scenario.Parse(shippedName(p), data)
}

// shippedName is the shipped scenario p names ("fast", "fast.yaml",
// "scenarios/fast.yaml": scenarios/fast.yaml).
func shippedName(p string) string {
	clean := filepath.ToSlash(filepath.Clean(p))
	return "scenarios/" + strings.TrimSuffix(path.Base(clean), ".yaml") + ".yaml"
}

// shippedScenario is the text of the shipped scenario p names, as the
// executable carries it.
func shippedScenario(p string) ([]byte, error) {
	data, err := fs.ReadFile(smtplab.Scenarios, shippedName(p))
	if err != nil {
		shipped, _ := fs.Glob(smtplab.Scenarios, "scenarios/*.yaml")
		for i, s := range shipped {
			shipped[i] = path.Base(s)
		}
		return nil, fmt.Errorf("scenario: no file %s here, and no shipped scenario of that name (shipped: %s)", p, strings.Join(shipped, ", "))
	}
	return data, nil
}

// versionCmd prints the lab's version: the source tree's git describe
// when run in it, else the executable's own (its module version, or its
// commit), as result.json records it.
func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the lab's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "smtplab %s (%s, %s/%s)\n", stack.Version(ctx), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
