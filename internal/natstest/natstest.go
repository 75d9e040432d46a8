package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds how long a starting server may take to accept clients.
const readyTimeout = 10 * time.Second

// Server is an embedded nats-server. Its methods are safe for concurrent use.
type Server struct {
	mu   sync.Mutex
	opts server.Options // with the resolved port, reused by Restart
	srv  *server.Server
}

// Start starts a JetStream server on 127.0.0.1 with a random port, its store
// in t.TempDir(), no logging and no signal handlers. It is shut down when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is [Start] with a hook that may change the options after the
// defaults are set (a fixed StoreDir for restart tests, MaxPayload, …).
// A Port left at 0 by the hook means a random port, not 4222.
func StartWith(t testing.TB, configure func(*server.Options)) *Server {
	t.Helper()
	opts := defaultOptions(t)
	if configure != nil {
		configure(&opts)
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	s := &Server{opts: opts}
	if err := s.start(); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func defaultOptions(t testing.TB) server.Options {
	return server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
		// A dead client connection is noticed quickly, so tests that kill
		// servers do not wait on the default two-minute ping interval.
		PingInterval: 2 * time.Second,
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		return fmt.Errorf("server not ready for connections after %v", readyTimeout)
	}
	// Pin the resolved port so Restart comes back where clients expect it.
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		s.opts.Port = addr.Port
	}
	s.srv = srv
	return nil
}

// URL returns the client URL, nats://127.0.0.1:<port>.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("nats://%s:%d", s.opts.Host, s.opts.Port)
}

// StoreDir returns the JetStream store directory.
func (s *Server) StoreDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.StoreDir
}

// NATS returns the running server (nil after Shutdown), for assertions on
// its state.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Conn connects a client to the server. The client reconnects forever with a
// short wait (so it survives Restart) and is closed when the test ends.
func (s *Server) Conn(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return Connect(t, s.URL(), opts...)
}

// Connect dials url (one or a comma-separated list) with test-friendly
// reconnect settings and closes the connection when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	base := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.Timeout(2 * time.Second),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Shutdown stops the server and waits for it to exit. It is idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart shuts the server down (if running) and starts it again on the same
// port with the same store directory, as a process restart would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	var err error
	// The port was just released; binding it again can race the kernel.
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("natstest: restart: %v", err)
}

// StartCluster starts an n-node JetStream cluster on loopback, in process,
// and waits until it has a meta leader. Each node has its own store in
// t.TempDir(). All nodes are shut down when the test ends.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: cluster of %d servers", n)
	}
	ports := freePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	servers := make([]*Server, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		opts := defaultOptions(t)
		opts.ServerName = fmt.Sprintf("n%d", i+1)
		opts.Cluster = server.ClusterOpts{
			Name: "natstest",
			Host: "127.0.0.1",
			Port: ports[i],
		}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		servers[i] = &Server{opts: opts}
		// Start concurrently: each node waits for its routes.
		wg.Go(func() { errs[i] = servers[i].start() })
	}
	wg.Wait()
	for _, s := range servers {
		t.Cleanup(s.Shutdown)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("natstest: cluster node %d: %v", i+1, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders := 0
		for _, s := range servers {
			if srv := s.NATS(); srv != nil && srv.JetStreamIsLeader() {
				leaders++
			}
		}
		if leaders == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster has no JetStream meta leader after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// ClusterURL returns the comma-separated client URLs of servers.
func ClusterURL(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// freePorts reserves n loopback ports by binding and releasing them. A
// cluster needs its route ports before any node starts.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserve port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
