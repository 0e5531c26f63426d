// Command cairn is the command-line interface of the cairn block-level backup
// appliance: it creates repositories, backs up disk images and block
// devices, restores them, and maintains the repository.
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error (unknown
// command or flag, a missing required flag or argument), 130 when
// interrupted by SIGINT or SIGTERM.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal has cancelled the context, restore the
		// default handling so that a second Ctrl-C kills at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
