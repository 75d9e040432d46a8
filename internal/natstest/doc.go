// Package natstest implements an embedded nats-server with JetStream for
// tests: a single server on a random loopback port with its store in
// t.TempDir(), restartable on the same port and store, and an in-process
// JetStream cluster for replicated-bucket tests. Nothing needs to be
// installed: `go test ./...` is enough.
package natstest
