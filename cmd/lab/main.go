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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Root().ExecuteContext(ctx)
	stop()
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
