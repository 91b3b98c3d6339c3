// Package cli is the lab's command line (cobra): run, clean, and the
// in-container entry points of the Go roles (role, sendmail, inject). It
// parses flags and calls the library; cmd/lab only executes it and exits.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// Exit codes: 0 the run passed; 1 a message was not delivered exactly
// once, or the lab itself failed; 2 bad input (a scenario, a result file);
// 3 every message arrived but an expectation of the scenario failed; 4
// every message arrived but the injection did not hold the workload's
// pace, so the figures (and expectations on them) are not comparable: 4
// goes before 3.
const (
	ExitBadInput    = 2
	ExitExpectation = 3
	ExitPaceNotHeld = 4
)

// ExitError asks main to exit with Code after printing Msg.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// Root returns the lab command.
func Root() *cobra.Command {
	var results string
	root := &cobra.Command{
		Use:   "lab",
		Short: "smtplab: a reproducible test lab for mail servers",
		Long: "smtplab re-runs Courier's 1999 ESMTP benchmark in containers and lets you run your own.\n" +
			"With no command it runs " + topology.DefaultScenario + ".",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runScenario(cmd, topology.DefaultScenario, results)
		},
	}
	root.PersistentFlags().StringVar(&results, "results", "results", "folder for the runs' results")
	var repeat int
	var engine string
	run := &cobra.Command{
		Use:   "run [scenario.yaml]",
		Short: "run a scenario (default " + topology.DefaultScenario + ")",
		Long: "Run a scenario and print its figures beside 1999's. Results go to <results>/<run>/:\n" +
			"result.json, events.jsonl, report.html and the receiver's Maildir.\n" +
			"With --repeat N the scenario runs N times into <results>/<scenario>-repeat-<time>/, and the\n" +
			"median and spread of every figure are printed (lab compare takes that folder as one side).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := topology.DefaultScenario
			if len(args) == 1 {
				path = args[0]
			}
			if repeat < 1 {
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab run: --repeat %d: must be at least 1", repeat)}
			}
			switch engine {
			case engineDocker:
				if sc, err := loadScenario(path); err == nil {
					if err := lab.DockerCan(sc); err != nil {
						return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v", path, err)}
					}
				}
			case engineSwarm:
				if repeat > 1 {
					return &ExitError{Code: ExitBadInput, Msg: "lab run: --repeat with --engine swarm: not yet; run it N times and compare the folders (lab compare)"}
				}
				return runOnSwarm(cmd, path, results)
			default:
				return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("lab run: --engine %q: want %s or %s", engine, engineDocker, engineSwarm)}
			}
			if repeat > 1 {
				return runRepeated(cmd, path, results, repeat)
			}
			return runScenario(cmd, path, results)
		},
	}
	run.Flags().IntVar(&repeat, "repeat", 1, "run the scenario N times and print the median and spread of each figure")
	run.Flags().StringVar(&engine, "engine", engineDocker, "where the roles run: docker (containers on one engine) or swarm (services on Docker Swarm, the sender as sender.replicas replicas)")
	root.AddCommand(run, compareCmd(), reportCmd(), composeCmd(), kubernetesCmd(), runnerCmd(), cleanCmd(), queueCmd(), roleCmd(), sendmailCmd(), injectCmd(), reaperCmd(), imagesCmd(), versionCmd())
	// A typo on the command line is bad input (exit 2), like a bad
	// scenario, never "a message was lost" (exit 1).
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v (see %s --help)", c.CommandPath(), err, c.CommandPath())}
	})
	for _, c := range append(root.Commands(), root) {
		if c.Args != nil {
			c.Args = badArgs(c.Args)
		}
	}
	return root
}

func runScenario(cmd *cobra.Command, path, results string) error {
	return runWith(cmd, path, results, lab.Run)
}

// runWith loads the scenario at path, runs it with run (lab.Run, or
// lab.RunCompose in the compose runner), prints the report and turns the
// outcome into the exit code.
func runWith(cmd *cobra.Command, path, results string, run lab.Runner) error {
	sc, err := loadScenario(path)
	if err != nil {
		return &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	stderr := cmd.ErrOrStderr()
	res, model, err := lab.RunWithModel(cmd.Context(), sc, lab.Options{ResultsDir: results, Progress: stderr, Terminal: isTerminal(stderr)}, run)
	writeIndex(stderr, results)
	if res != nil && res.Complete {
		out := cmd.OutOrStdout()
		title := fmt.Sprintf("smtplab %s: scenario %s (%s)", res.Environment.LabVersion, sc.Name, path)
		printRun(out, title, res)
		printThreeWay(out, sc, res, model)
	}
	if err == nil {
		return nil
	}
	if code := exitCode(err); code != 1 || errors.Is(err, lab.ErrNotDelivered) {
		return &ExitError{Code: code, Msg: "lab: " + err.Error()}
	}
	return err
}

// writeIndex rewrites <results>/index.html, the list of every run there.
// A page that cannot be written is said on w, and changes no exit code:
// the run's own files are written already.
func writeIndex(w io.Writer, results string) {
	if _, err := os.Stat(results); err != nil {
		return // no run got as far as its folder
	}
	if err := htmlreport.WriteIndexFile(results); err != nil {
		fmt.Fprintf(w, "lab: the results' index: %v\n", err)
	}
}

// badArgs makes a command's argument check's complaint bad input.
func badArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		err := check(c, args)
		var ee *ExitError
		if err == nil || errors.As(err, &ee) {
			return err
		}
		return &ExitError{Code: ExitBadInput, Msg: fmt.Sprintf("%s: %v (see %s --help)", c.CommandPath(), err, c.CommandPath())}
	}
}

// printRun prints a run's report: the figures beside 1999's, where the
// time went, the slowest messages, the expectations, and its files.
func printRun(out io.Writer, title string, r *report.Result) error {
	if err := report.WriteText(out, title, r.Summary, r.Outcome, r.Scenario.Workload.Not1999()); err != nil {
		return err
	}
	if err := report.WriteMemory(out, r); err != nil {
		return err
	}
	if err := report.WriteDetails(out, r); err != nil {
		return err
	}
	if len(r.Expectations) > 0 {
		fmt.Fprintln(out)
		for _, v := range r.Expectations {
			fmt.Fprintln(out, v)
		}
	}
	// The run's files, as far as they are there (a result.json given to
	// lab report may stand alone).
	var files []string
	result := r.Path
	if result == "" {
		result = filepath.Join(r.Dir, report.ResultFile)
	}
	for _, f := range []struct{ name, path string }{{"result", result}, {"report", filepath.Join(r.Dir, report.HTMLFile)},
		{"events", filepath.Join(r.Dir, report.EventsFile)}, {"Maildir", filepath.Join(r.Dir, "maildir")}} {
		if _, err := os.Stat(f.path); err == nil {
			files = append(files, f.name+": "+f.path)
		}
	}
	if len(files) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(out, "\n%s\n", strings.Join(files, ", "))
	return err
}

// isTerminal reports whether w is a terminal (progress is redrawn in
// place there, printed as plain lines elsewhere).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func cleanCmd() *cobra.Command {
	var runID string
	var images, allImages bool
	c := &cobra.Command{
		Use:   "clean [--run ID] [--images [--all-images]]",
		Short: "remove every container and network the lab left (found by its label); --images: old images too",
		Long: "clean removes the containers and networks a killed run left, found by the lab's label, and a\n" +
			"swarm run's services, overlay network, volumes and its copy of the scenario (in the temporary\n" +
			"folder); it leaves a swarm that a run made.\n" +
			"--images also removes the lab's old images (each code change builds new ones): it keeps the\n" +
			"newest of each, the one docker-compose.yml runs, and the Debian bases of the real MTAs\n" +
			"(debootstrap takes a minute or more); --all-images removes those too.",
		Args: cobra.NoArgs,
		RunE: withEngine(func(cmd *cobra.Command, eng *stack.Engine) error {
			// Swarm runs' services first: their task containers and
			// overlay networks go with them.
			left, err := stack.CleanSwarm(cmd.Context(), eng, runID)
			if left {
				fmt.Fprintln(cmd.OutOrStdout(), "left the swarm a run of the lab had made")
			}
			if err != nil {
				return err
			}
			if copies, _ := filepath.Glob(lab.ScenarioCopies(runID)); len(copies) > 0 {
				// The scenario copies of swarm runs killed before they
				// could remove them (their runners are gone by now).
				for _, dir := range copies {
					if rerr := os.RemoveAll(dir); rerr != nil {
						err = errors.Join(err, rerr)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %d swarm runs' scenario copies (%s)\n", len(copies), lab.ScenarioCopies(runID))
			}
			if err != nil {
				return err
			}
			n, err := stack.Clean(cmd.Context(), eng, runID)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d containers, %d networks\n", len(n.Containers), len(n.Networks))
			if err != nil || !(images || allImages) {
				return err
			}
			gone, err := stack.CleanImages(cmd.Context(), eng, "smtplab/", allImages)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d images\n", len(gone))
			return err
		}),
	}
	c.Flags().StringVar(&runID, "run", "", "only this run's")
	c.Flags().BoolVar(&images, "images", false, "also remove the lab's old images")
	c.Flags().BoolVar(&allImages, "all-images", false, "remove every image of the lab, the Debian bases too")
	return c
}

func roleCmd() *cobra.Command {
	var spec string
	var await []string
	c := &cobra.Command{
		Use:    "role --spec FILE | --await ADDR...",
		Short:  "serve one Go role (inside its container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(await) > 0 {
				return role.AwaitAll(cmd.Context(), await, spec, cmd.OutOrStdout())
			}
			s, err := role.ReadSpec(spec)
			if err != nil {
				return err
			}
			return role.Run(cmd.Context(), s, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&spec, "spec", topology.SpecPath, "role spec (JSON); with --await, where the spec received is kept")
	c.Flags().StringArrayVar(&await, "await", nil, "serve this control address until a spec arrives (POST /spec), then run it (docker compose, swarm); repeated, one role per address in this process, the first the one whose spec is --spec")
	return c
}

// reaperCmd is the run's reaper (lab/stack/reaper.go), in its container.
func reaperCmd() *cobra.Command {
	var runID, listen string
	c := &cobra.Command{
		Use:    "reaper --run ID",
		Short:  "remove the run when the lab that started it is gone (inside its container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stack.Reap(cmd.Context(), listen, runID, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&runID, "run", "", "the run to watch")
	c.Flags().StringVar(&listen, "listen", ":"+stack.ReaperPort, "where the lab connects")
	return c
}

// sendmailCmd is sendmail's command line: -f FROM RCPT... < message. It
// reads the sender's spec (when present) for the queue folder and host name.
func sendmailCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "sendmail [-f from] [-F name] [-i] [-t] rcpt...",
		Short:              "queue a message for the sender, as sendmail does",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, host := topology.QueueDir, "localhost"
			if s, err := role.ReadSpec(topology.SpecPath); err == nil && s.Sender != nil {
				dir, host = s.Sender.QueueDir, s.Sender.Hostname
			}
			if d := os.Getenv("SMTPLAB_QUEUE"); d != "" {
				dir = d
			}
			err := sender.Sendmail(args, cmd.InOrStdin(), dir, host)
			var ue *sender.UsageError
			if errors.As(err, &ue) {
				return &ExitError{Code: ue.Code, Msg: ue.Msg}
			}
			return err
		},
	}
}

func injectCmd() *cobra.Command {
	var workload, external, smtpAddr, idHost, eventsPath string
	c := &cobra.Command{
		Use:    "inject --workload FILE (--sendmail PATH | --smtp HOST:PORT)",
		Short:  "run the workload's loop on its pace with a real MTA's sendmail or its SMTP submission port (inside its container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(workload)
			if err != nil {
				return err
			}
			inj, err := role.DecodeInjection(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("workload %s: %w", workload, err)
			}
			var log io.Writer
			if eventsPath != "" {
				// Beside the events, the loop's pid: the lab stops a loop
				// that outlives its run (SIGTERM ends it after the message
				// in hand), then reads what it injected.
				if err := os.WriteFile(eventsPath+".pid", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
					return err
				}
				f, err := os.OpenFile(eventsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				log = f
			}
			submit := sender.SubmitSendmail([]string{external})
			if smtpAddr != "" {
				submit = sender.SubmitSMTP(smtpAddr)
			}
			res := sender.InjectExternal(cmd.Context(), inj, submit, idHost, log)
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
	c.Flags().StringVar(&workload, "workload", topology.WorkloadPath, "the injection: pace and messages (JSON, sender.Injection)")
	c.Flags().StringVar(&external, "sendmail", "", "the real MTA's sendmail to run, adding a Message-ID to each message")
	c.Flags().StringVar(&smtpAddr, "smtp", "", "instead of a sendmail: the MTA's SMTP submission port, one session per message")
	c.MarkFlagsOneRequired("sendmail", "smtp")
	c.MarkFlagsMutuallyExclusive("sendmail", "smtp")
	c.Flags().StringVar(&idHost, "message-id-host", "localhost", "host part of the Message-IDs added to each message")
	c.Flags().StringVar(&eventsPath, "events", "", "append each message's queued event to this file (JSON lines) as it is taken")
	return c
}

// queueCmd lists the queue of every running sender (or one run's).
func queueCmd() *cobra.Command {
	var runID string
	c := &cobra.Command{
		Use:   "queue",
		Short: "list the messages still queued in running senders",
		Args:  cobra.NoArgs,
		RunE: withEngine(func(cmd *cobra.Command, eng *stack.Engine) error {
			senders, err := stack.FindRunning(cmd.Context(), eng, topology.Sender, runID)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(senders) == 0 {
				fmt.Fprintln(out, "no running sender")
				return nil
			}
			for _, s := range senders {
				envs, err := fetchQueue(cmd.Context(), s)
				if err != nil {
					return fmt.Errorf("run %s: %w", s.RunID, err)
				}
				fmt.Fprintf(out, "run %s: %d queued\n", s.RunID, len(envs))
				for _, e := range envs {
					fmt.Fprintf(out, "  %s  %s  %s -> %s\n", e.ID, e.QueuedAt.Format(time.RFC3339), e.From, strings.Join(e.Rcpts, ", "))
				}
			}
			return nil
		}),
	}
	c.Flags().StringVar(&runID, "run", "", "only this run's sender")
	return c
}

func fetchQueue(ctx context.Context, s stack.Running) ([]sender.Envelope, error) {
	return role.NewHandle(s.Role, s.Control, nil).Queue(ctx)
}

// withEngine runs f with a connection to the Docker engine, closed after.
func withEngine(f func(cmd *cobra.Command, eng *stack.Engine) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		eng, err := stack.Connect(cmd.Context())
		if err != nil {
			return err
		}
		defer eng.Close()
		return f(cmd, eng)
	}
}
