package cli

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// imagesCmd builds every image the lab can need ahead of a run: its own
// (also tagged for docker-compose.yml) and those of the real MTAs
// (debootstrap'ed Debian, about a minute each the first time on a
// machine; reused after, see lab/stack/debian.go). The lab's own image is
// built and tagged first, whatever then happens to the MTAs': compose
// needs nothing else.
func imagesCmd() *cobra.Command {
	var only []string
	var scenarioPath string
	c := &cobra.Command{
		Use:   "images [--mta NAME,... | --mta none | --scenario FILE]",
		Short: "build the lab's image and the real MTAs' (Courier, Postfix, Exim) ahead of a run",
		Long: "images builds the lab's own image (the Go roles; tagged " + topology.ComposeImage + " for docker-compose.yml)\n" +
			"and the real MTAs' images (debootstrap, root). --mta none builds the lab's alone (all compose needs);\n" +
			"--scenario FILE only what FILE runs.",
		Args: cobra.NoArgs,
		RunE: withEngine(func(cmd *cobra.Command, eng *stack.Engine) error {
			names, err := mtasToBuild(only, scenarioPath)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
			start := time.Now()
			lab, mtas, err := stack.BuildImages(cmd.Context(), eng, names, logf)
			out := cmd.OutOrStdout()
			if lab.ID != "" {
				// docker-compose.yml runs the lab's image by a fixed name:
				// tagged even when an MTA's image then fails.
				if terr := lab.TagAs(cmd.Context(), eng, topology.ComposeImage); terr != nil {
					return terr
				}
				fmt.Fprintf(out, "lab      %s  %s (also %s)\n", lab.Ref, builtOrReused(lab.Built), topology.ComposeImage)
			}
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(out, "%-8s %s  %s\n", n, mtas[n].Ref, builtOrReused(mtas[n].Built))
			}
			fmt.Fprintf(out, "%.1f s\n", time.Since(start).Seconds())
			return nil
		}),
	}
	c.Flags().StringSliceVar(&only, "mta", nil, "only these MTAs (courier, postfix, exim), or none")
	c.Flags().StringVar(&scenarioPath, "scenario", "", "only the images this scenario runs")
	return c
}

// mtasToBuild are the real MTAs whose images `lab images` builds: those
// --mta names (none for "none"), those the scenario at path runs, or
// every one.
func mtasToBuild(only []string, path string) ([]string, error) {
	switch {
	case len(only) > 0 && path != "":
		return nil, &ExitError{Code: ExitBadInput, Msg: "lab images: give --mta or --scenario, not both"}
	case path != "":
		sc, err := loadScenario(path)
		if err != nil {
			return nil, &ExitError{Code: ExitBadInput, Msg: err.Error()}
		}
		return sc.MTAs(), nil
	case slices.Equal(only, []string{"none"}):
		return nil, nil
	case len(only) > 0:
		for _, n := range only {
			if _, ok := stack.MTAs[n]; !ok {
				return nil, &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab images: --mta %q: want courier, postfix, exim or none", n)}
			}
		}
		return only, nil
	}
	names := slices.Sorted(maps.Keys(stack.MTAs))
	return names, nil
}

func builtOrReused(built bool) string {
	if built {
		return "built"
	}
	return "reused"
}
