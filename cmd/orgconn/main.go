// Command orgconn applies bulk changes to Auth0 Organization connections:
// it imports CSV files of changes into a Redis queue and runs workers that
// apply them through the Management API at the pace the tenant allows.
//
// Run "orgconn help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Signals become context cancellation here and only here.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}
