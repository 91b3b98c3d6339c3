package cli

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// imagesCmd builds every image the lab can need ahead of a run: its own
// (also tagged for docker-compose.yml) and those of the real MTAs
// (debootstrap'ed Debian, about a minute each the first time on a
// machine; reused after, see lab/stack/debian.go).
func imagesCmd() *cobra.Command {
	var only []string
	c := &cobra.Command{
		Use:   "images",
		Short: "build the lab's image and the real MTAs' (Courier, Postfix, Exim) ahead of a run",
		Args:  cobra.NoArgs,
		RunE: withEngine(func(cmd *cobra.Command, eng *stack.Engine) error {
			names := only
			if len(names) == 0 {
				for n := range stack.MTAs {
					names = append(names, n)
				}
				slices.Sort(names)
			}
			stderr := cmd.ErrOrStderr()
			logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
			start := time.Now()
			lab, mtas, err := stack.BuildImages(cmd.Context(), eng, names, logf)
			if err != nil {
				return err
			}
			// docker-compose.yml runs the lab's image by a fixed name.
			if err := lab.TagAs(cmd.Context(), eng, topology.ComposeImage); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "lab      %s  %s (also %s)\n", lab.Ref, builtOrReused(lab.Built), topology.ComposeImage)
			for _, n := range names {
				fmt.Fprintf(out, "%-8s %s  %s\n", n, mtas[n].Ref, builtOrReused(mtas[n].Built))
			}
			fmt.Fprintf(out, "%.1f s\n", time.Since(start).Seconds())
			return nil
		}),
	}
	c.Flags().StringSliceVar(&only, "mta", nil, "only these MTAs (courier, postfix, exim)")
	return c
}

func builtOrReused(built bool) string {
	if built {
		return "built"
	}
	return "reused"
}
