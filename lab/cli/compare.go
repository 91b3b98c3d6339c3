package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
)

// resultsHelp says what a RESULT argument may be (compare.LoadSet).
const resultsHelp = "a result.json, a run's folder under results/, or a folder of runs (lab run --repeat N)"

// compareCmd is `lab compare A B`: two runs, or two sets of repeated
// runs, figure by figure (compare.Compare); --bench writes both sets for
// benchstat instead.
func compareCmd() *cobra.Command {
	var bench bool
	var format string
	c := &cobra.Command{
		Use:   "compare A B",
		Short: "compare two runs, or two sets of repeated runs, figure by figure",
		Long: "compare prints, for each figure, A's median, B's median, the change and a verdict.\n" +
			"A and B are each " + resultsHelp + ".\n\n" +
			"With two or more runs a side, B is \"better\" or \"worse\" only when the two sides' ranges\n" +
			"(min .. max) do not overlap, else \"within noise\"; with one run on either side the change\n" +
			"is shown but not judged: no spread is known.\n\n" +
			"--format json prints the comparison as JSON; --format html as one page that opens offline,\n" +
			"with a chart of every figure's runs on both sides (lab compare --format html A B > compare.html).\n\n" +
			"--bench writes A and B in Go's benchmark format to a.txt and b.txt in a new temporary\n" +
			"folder and prints the benchstat command that compares them (lab report --format bench\n" +
			"prints one set, to redirect to a file of your choice).",
		Args:         exactArgs(2, "lab compare: want two results, A and B, each "+resultsHelp),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "json", "html":
			default:
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab compare: --format %q: want text, json or html", format)}
			}
			a, err := loadSet("compare", args[0])
			if err != nil {
				return err
			}
			b, err := loadSet("compare", args[1])
			if err != nil {
				return err
			}
			cmp, err := compare.Compare(a, b) // also checks each set
			if err != nil {
				return badInput("compare", err)
			}
			switch {
			case bench:
				return writeBenchPair(cmd, args, a, b)
			case format == "json":
				return writeJSON(cmd, cmp)
			case format == "html":
				return htmlreport.WriteCompare(cmd.OutOrStdout(), cmp, a, b, [2]string{args[0], args[1]})
			}
			return compare.WriteText(cmd.OutOrStdout(), cmp)
		},
	}
	c.Flags().BoolVar(&bench, "bench", false, "write both sets for benchstat and print the command that compares them")
	c.Flags().StringVar(&format, "format", "text", "text, json or html")
	c.SetFlagErrorFunc(flagError("compare"))
	return c
}

// writeBenchPair writes A and B as a.txt and b.txt in a new temporary
// folder and prints how to compare them with benchstat.
func writeBenchPair(cmd *cobra.Command, args []string, a, b []*report.Result) error {
	dir, err := os.MkdirTemp("", "smtplab-bench-")
	if err != nil {
		return err
	}
	files := []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")}
	for i, runs := range [][]*report.Result{a, b} {
		f, err := os.Create(files[i])
		if err != nil {
			return err
		}
		if err := compare.WriteBench(f, runs); err != nil {
			f.Close()
			return badInput("compare", err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	labels := []string{benchLabel(args[0]), benchLabel(args[1])}
	if labels[0] == labels[1] {
		labels = []string{"A", "B"}
	}
	ignore := ""
	if a[0].Scenario.Name != b[0].Scenario.Name {
		ignore = " -ignore /scenario" // put the two scenarios in one row
	}
	out := cmd.OutOrStdout()
	for i, runs := range [][]*report.Result{a, b} {
		fmt.Fprintf(out, "%s: %s (%s of %s) -> %s\n", "AB"[i:i+1], args[i], plural(len(runs), "run"), runs[0].Scenario.Name, files[i])
	}
	fmt.Fprintf(out, "\ncompare them with benchstat (it wants 4 or more runs a side to call a change significant):\n")
	fmt.Fprintf(out, "  go run golang.org/x/perf/cmd/benchstat@latest%s %s=%s %s=%s\n", ignore, labels[0], files[0], labels[1], files[1])
	return nil
}

// benchLabel names a side for benchstat's column: its run's or set's
// folder name, in characters benchstat's NAME=file accepts.
func benchLabel(path string) string {
	path = filepath.Clean(path)
	if filepath.Base(path) == report.ResultFile {
		path = filepath.Dir(path)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".json")
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, name)
}

// reportCmd is `lab report RESULT`: a stored run's report again, or the
// median and spread of a folder of repeated runs.
func reportCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "report RESULT",
		Short: "print a stored run's report again, or the statistics of repeated runs",
		Long: "report prints the report of RESULT, " + resultsHelp + ".\n" +
			"For one run: text is the report lab run printed, with the scenario's expectations;\n" +
			"json the result itself. For a folder of runs: the median, least, most and spread\n" +
			"of each figure (json: the same as JSON). bench writes the runs in Go's benchmark\n" +
			"format, one line a run, for benchstat:\n\n" +
			"  lab report --format bench results/A > a.txt\n" +
			"  lab report --format bench results/B > b.txt\n" +
			"  go run golang.org/x/perf/cmd/benchstat@latest a.txt b.txt",
		Args:         exactArgs(1, "lab report: want one result, "+resultsHelp),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "json", "bench", "html":
			default:
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab report: --format %q: want text, json, bench or html", format)}
			}
			runs, err := loadSet("report", args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "bench" {
				if err := compare.WriteBench(out, runs); err != nil {
					return badInput("report", err)
				}
				return nil
			}
			if len(runs) == 1 {
				return writeRun(cmd, args[0], runs[0], format)
			}
			stats, err := compare.Stats(runs)
			if err != nil {
				return badInput("report", err)
			}
			if format == "html" {
				if err := htmlreport.WriteRepeat(out, runs); err != nil {
					return badInput("report", err)
				}
				return nil
			}
			if format == "json" {
				return writeJSON(cmd, struct {
					Scenario string         `json:"scenario"`
					Runs     []string       `json:"runs"`
					Stats    []compare.Stat `json:"stats"`
				}{runs[0].Scenario.Name, runIDs(runs), stats})
			}
			fmt.Fprintf(out, "scenario %s: %s in %s\n", runs[0].Scenario.Name, plural(len(runs), "run"), args[0])
			held, checked := 0, 0
			for _, r := range runs {
				if len(r.Expectations) > 0 {
					checked++
					if len(report.Failed(r.Expectations)) == 0 {
						held++
					}
				}
			}
			if checked > 0 {
				fmt.Fprintf(out, "the scenario's expectations held in %d of %d runs\n", held, checked)
			}
			fmt.Fprintln(out)
			return compare.WriteStats(out, stats)
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text, json, bench, or html (one run: the page report.html holds; a folder of runs: the page lab run --repeat writes as its index.html)")
	c.SetFlagErrorFunc(flagError("report"))
	return c
}

// writeRun prints one run as lab run did, or as JSON.
func writeRun(cmd *cobra.Command, path string, r *report.Result, format string) error {
	out := cmd.OutOrStdout()
	switch format {
	case "json":
		return writeJSON(cmd, r)
	case "html":
		return htmlreport.Write(out, r)
	}
	file := filepath.Join(r.Dir, report.ResultFile)
	if !r.Complete {
		// Its summary is empty: printing it would show zeros as figures.
		_, err := fmt.Fprintf(out, "run %s of scenario %s did not complete: %s\nresult: %s\n", r.RunID, r.Scenario.Name, r.Error, file)
		return err
	}
	title := fmt.Sprintf("smtplab %s: scenario %s (run %s)", r.Environment.LabVersion, r.Scenario.Name, r.RunID)
	return printRun(out, title, r)
}

func writeJSON(cmd *cobra.Command, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(append(b, '\n'))
	return err
}

// loadSet loads a RESULT argument; what cannot be read is bad input, and
// the error names the file.
func loadSet(command, path string) ([]*report.Result, error) {
	runs, err := compare.LoadSet(path)
	if err != nil {
		return nil, badInput(command, err)
	}
	return runs, nil
}

func badInput(command string, err error) error {
	return &ExitError{Code: ExitBadInput, Msg: "lab " + command + ": " + err.Error()}
}

func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func runIDs(runs []*report.Result) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.RunID
	}
	return ids
}

// flagError makes a flag that does not parse bad input.
func flagError(command string) func(*cobra.Command, error) error {
	return func(_ *cobra.Command, err error) error { return badInput(command, err) }
}

// exactArgs wants n arguments; else it is bad input, said as msg.
func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s (got %d)", msg, len(args))}
		}
		return nil
	}
}
