package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := NewMain()
	m.SetDefaultLogger = true
	err := m.Run(ctx, os.Args[1:])
	stop()
	if msg := errorLine(err); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(exitCode(err))
}
