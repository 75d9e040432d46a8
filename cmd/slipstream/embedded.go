package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults of the embedded NATS server that `mirror` starts without -nats.
const (
	// DefaultListen is where the embedded server accepts clients, so that
	// `slipstream kv` and any NATS client on the host reach it.
	DefaultListen = "127.0.0.1:4222"
	// DefaultNATSURL is the server `slipstream kv` talks to by default: the
	// embedded server of a mirror running on this host.
	DefaultNATSURL = "nats://127.0.0.1:4222"
	// embeddedStoreSuffix names the embedded server's JetStream directory,
	// next to the fold: <fold>.nats/.
	embeddedStoreSuffix = ".nats"
	// embeddedReadyTimeout bounds the embedded server's startup (JetStream
	// recovers its streams from disk first).
	embeddedReadyTimeout = 2 * time.Minute
)

// embeddedConfig configures an in-process nats-server with JetStream.
type embeddedConfig struct {
	Listen   string // host:port; port 0 picks a free one
	StoreDir string // JetStream store directory
	Logger   *slog.Logger
}

// embeddedServer is a running in-process nats-server.
type embeddedServer struct {
	srv *server.Server
}

// startEmbedded starts a nats-server with JetStream and waits until it
// accepts clients. A listen failure (port in use) is returned at once.
func startEmbedded(ctx context.Context, cfg embeddedConfig) (*embeddedServer, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded server listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded server listen address %q: invalid port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "slipstream",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		// No HTTP monitoring, cluster, leafnode or websocket listeners.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure embedded nats-server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	sl := &serverLogger{log: logger.With("component", "nats-server"), fatal: make(chan string, 1)}
	srv.SetLoggerV2(sl, false, false, false)
	go srv.Start()

	deadline := time.Now().Add(embeddedReadyTimeout)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		select {
		case msg := <-sl.fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("start embedded nats-server on %s: %s", cfg.Listen, msg)
		case <-ctx.Done():
			srv.Shutdown()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("start embedded nats-server on %s: not ready after %v", cfg.Listen, embeddedReadyTimeout)
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		select {
		case msg := <-sl.fatal:
			return nil, fmt.Errorf("start embedded nats-server JetStream in %s: %s", cfg.StoreDir, msg)
		default:
			return nil, errors.New("start embedded nats-server: JetStream is not enabled")
		}
	}
	sl.started.Store(true)
	return &embeddedServer{srv: srv}, nil
}

// ClientURL returns the URL clients dial.
func (e *embeddedServer) ClientURL() string { return e.srv.ClientURL() }

// Addr returns the host:port the server listens on.
func (e *embeddedServer) Addr() string {
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok {
		return a.String()
	}
	return ""
}

// Shutdown stops the server and waits for it.
func (e *embeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverLogger routes nats-server's log lines to slog. The server's chatty
// notices go to Debug. A fatal error (which would os.Exit with the server's
// own logger) during startup is handed to startEmbedded, which returns it;
// after startup it is logged.
type serverLogger struct {
	log     *slog.Logger
	once    sync.Once
	fatal   chan string
	started atomic.Bool
}

func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if l.started.Load() {
		l.log.Error(msg)
		return
	}
	l.once.Do(func() { l.fatal <- msg })
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Debugf(format string, v ...any) {}

func (l *serverLogger) Tracef(format string, v ...any) {}

// startFoldServer starts the embedded server of the fold in foldDir: its
// JetStream data in storeDir, or <fold>.nats beside the fold when storeDir
// is empty. It returns the server and the store directory used.
func startFoldServer(ctx context.Context, listen, storeDir, foldDir string, logger *slog.Logger) (*embeddedServer, string, error) {
	if storeDir == "" {
		storeDir = filepath.Clean(foldDir) + embeddedStoreSuffix
	}
	emb, err := startEmbedded(ctx, embeddedConfig{Listen: listen, StoreDir: storeDir, Logger: logger})
	return emb, storeDir, err
}
