// Command lab runs smtplab: with no arguments it re-runs the 1999 Courier
// benchmark (scenarios/courier-1999.yaml) in containers and prints this
// run's figures beside 1999's. The same binary is every Go role inside the
// containers (lab role, lab sendmail, lab inject). Only main exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/smtplab/smtplab/lab/cli"
)

func main() {
	// Ctrl-C (SIGINT) or SIGTERM ends the run: the lab removes what it
	// started, writes what it has, and exits 128 plus the signal's number
	// (130, 143), as a shell does, whatever the run's own outcome: 1 here
	// means a message was lost, which an interrupted run cannot say.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cancel(interrupted{s.(syscall.Signal)})
		signal.Stop(sigs) // a second Ctrl-C kills at once
	}()
	err := cli.Root().ExecuteContext(ctx)
	var sig interrupted
	if errors.As(context.Cause(ctx), &sig) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
		}
		fmt.Fprintf(os.Stderr, "lab: interrupted (%s)\n", sig.s)
		os.Exit(128 + int(sig.s))
	}
	if err != nil {
		var ee *cli.ExitError
		if errors.As(err, &ee) {
			if ee.Msg != "" {
				fmt.Fprintln(os.Stderr, ee.Msg)
			}
			os.Exit(ee.Code)
		}
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

// interrupted is the cause of a run's end by a signal.
type interrupted struct{ s syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.s.String() }
