package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

// runMainEnv is runMain with env as the process environment.
func runMainEnv(t testing.TB, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	err = m.Run(t.Context(), args)
	return out.String(), errOut.String(), err
}

// nkeyUser makes an NKey user: its public key and the path of its seed
// file.
func nkeyUser(t *testing.T) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}

// kvRoundTrip puts and gets a key through `slipstream kv` with the
// connection arguments conn (and environment env).
func kvRoundTrip(t *testing.T, env map[string]string, conn ...string) error {
	t.Helper()
	args := append([]string{"kv", "put", "-bucket", "conn", "-timeout", "5s"}, conn...)
	if _, _, err := runMainEnv(t, env, "", append(args, "k", "v")...); err != nil {
		return err
	}
	out, _, err := runMainEnv(t, env, "", append([]string{"kv", "get", "-bucket", "conn", "-timeout", "5s"}, append(conn, "k")...)...)
	if err != nil {
		return err
	}
	if out != "v" {
		t.Fatalf("kv get = %q, want v", out)
	}
	return nil
}

func TestCommandTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.StartTLS(t, pki, true)
	url := "tls://" + strings.TrimPrefix(srv.URL(), "nats://")
	if err := kvRoundTrip(t, nil, "-nats", url, "-tlsca", pki.CA, "-tlscert", pki.ClientCert, "-tlskey", pki.ClientKey); err != nil {
		t.Fatalf("kv over mutual TLS: %v", err)
	}
	// The same from the environment (natscli's variable names).
	env := map[string]string{"NATS_URL": url, "NATS_CA": pki.CA, "NATS_CERT": pki.ClientCert, "NATS_KEY": pki.ClientKey}
	if err := kvRoundTrip(t, env); err != nil {
		t.Fatalf("kv over mutual TLS from the environment: %v", err)
	}
	// Without the client certificate the server refuses.
	err := kvRoundTrip(t, nil, "-nats", url, "-tlsca", pki.CA)
	if !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv without a client certificate = %v", err)
	}
	// A flag wins over the environment: a wrong CA from the flag fails.
	if err := kvRoundTrip(t, env, "-tlsca", pki.OtherCA); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv with -tlsca over NATS_CA = %v, want the flag's CA used (refused)", err)
	}
}

func TestCommandNKey(t *testing.T) {
	pub, seed := nkeyUser(t)
	srv := natstest.StartWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	if err := kvRoundTrip(t, nil, "-nats", srv.URL(), "-nkey", seed); err != nil {
		t.Fatalf("kv with -nkey: %v", err)
	}
	if err := kvRoundTrip(t, map[string]string{"NATS_URL": srv.URL(), "NATS_NKEY": seed}); err != nil {
		t.Fatalf("kv with NATS_NKEY: %v", err)
	}
	if err := kvRoundTrip(t, nil, "-nats", srv.URL()); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv without the NKey = %v", err)
	}
}

func TestCommandTokenAndUserPassword(t *testing.T) {
	tok := natstest.StartWith(t, func(o *server.Options) { o.Authorization = "t0k3n" })
	if err := kvRoundTrip(t, nil, "-nats", tok.URL(), "-token", "t0k3n"); err != nil {
		t.Fatalf("kv with -token: %v", err)
	}
	if err := kvRoundTrip(t, map[string]string{"NATS_URL": tok.URL(), "NATS_TOKEN": "t0k3n"}); err != nil {
		t.Fatalf("kv with NATS_TOKEN: %v", err)
	}
	up := natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = "alice", "s3cret" })
	if err := kvRoundTrip(t, nil, "-nats", up.URL(), "-user", "alice", "-password", "s3cret"); err != nil {
		t.Fatalf("kv with -user/-password: %v", err)
	}
	env := map[string]string{"NATS_URL": up.URL(), "NATS_USER": "alice", "NATS_PASSWORD": "s3cret"}
	if err := kvRoundTrip(t, env); err != nil {
		t.Fatalf("kv with NATS_USER/NATS_PASSWORD: %v", err)
	}
	if err := kvRoundTrip(t, env, "-password", "wrong"); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv with -password over NATS_PASSWORD = %v, want the flag's (wrong) password used", err)
	}
}

// TestHelpPrintsNoEnvironmentSecret: -h shows the variables' names, never
// their values.
func TestHelpPrintsNoEnvironmentSecret(t *testing.T) {
	env := map[string]string{"NATS_PASSWORD": "hunter2-secret", "NATS_TOKEN": "tok-secret", "NATS_URL": "nats://u:pw-secret@h:1"}
	for _, cmd := range []string{"mirror", "kv"} {
		out, _, err := runMainEnv(t, env, "", cmd, "-h")
		if err == nil || !strings.Contains(out, "NATS_PASSWORD") {
			t.Fatalf("%s -h: %v\n%s", cmd, err, out)
		}
		if strings.Contains(out, "secret") {
			t.Fatalf("%s -h prints a secret from the environment:\n%s", cmd, out)
		}
	}
}

// writeContext saves a natscli context file under xdg.
func writeContext(t *testing.T, xdg, name string, settings map[string]any) {
	t.Helper()
	dir := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCommandContext reads saved natscli contexts (natscontext reads
// $XDG_CONFIG_HOME/nats/context/NAME.json): the URL, TLS and NKey come
// from the context, flags override it, and an explicit credential
// replaces the context's.
func TestCommandContext(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	pki := natstest.NewPKI(t)
	pub, seed := nkeyUser(t)
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.TLS = true
		o.TLSConfig = pki.ServerTLSConfig(t, false)
		o.TLSTimeout = 2
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})
	url := "tls://" + strings.TrimPrefix(srv.URL(), "nats://")
	writeContext(t, xdg, "prod", map[string]any{"url": url, "ca": pki.CA, "nkey": seed, "description": "test"})
	writeContext(t, xdg, "nourl", map[string]any{"ca": pki.CA, "nkey": seed})
	writeContext(t, xdg, "wronguser", map[string]any{"url": url, "ca": pki.CA, "user": "x", "password": "y"})
	writeContext(t, xdg, "domain", map[string]any{"url": url, "ca": pki.CA, "nkey": seed, "jetstream_domain": "hub"})

	if err := kvRoundTrip(t, nil, "-context", "prod"); err != nil {
		t.Fatalf("kv -context prod: %v", err)
	}
	if err := kvRoundTrip(t, map[string]string{"NATS_CONTEXT": "prod"}); err != nil {
		t.Fatalf("kv with NATS_CONTEXT=prod: %v", err)
	}
	// The context has no URL: -nats supplies it.
	if err := kvRoundTrip(t, nil, "-context", "nourl", "-nats", url); err != nil {
		t.Fatalf("kv -context nourl -nats URL: %v", err)
	}
	// An explicit NKey replaces the context's user and password.
	if err := kvRoundTrip(t, nil, "-context", "wronguser", "-nkey", seed); err != nil {
		t.Fatalf("kv -context wronguser -nkey: %v", err)
	}
	if err := kvRoundTrip(t, nil, "-context", "wronguser"); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv -context wronguser = %v, want refused", err)
	}
	// A flag overrides the context's TLS CA.
	if err := kvRoundTrip(t, nil, "-context", "prod", "-tlsca", pki.OtherCA); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("kv -context prod -tlsca other = %v, want refused", err)
	}
	err := kvRoundTrip(t, nil, "-context", "missing")
	if !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("kv -context missing = %v", err)
	}
	err = kvRoundTrip(t, nil, "-context", "domain")
	if !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), "domain") {
		t.Fatalf("kv -context domain = %v", err)
	}
}

// TestMirrorEnvURLSkipsEmbedded: NATS_URL (like -nats) makes mirror connect
// to that server, with the environment's credentials, instead of starting
// its embedded one; -listen then is a usage error.
func TestMirrorEnvURLSkipsEmbedded(t *testing.T) {
	pub, seed := nkeyUser(t)
	srv := natstest.StartWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	env := map[string]string{"NATS_URL": srv.URL(), "NATS_NKEY": seed}
	fold := filepath.Join(t.TempDir(), "f")
	_, _, err := runMainEnv(t, env, "", "mirror", "-bucket", "conn", "-fold", fold, "-listen", "127.0.0.1:0")
	if exitCode(err) != 2 {
		t.Fatalf("mirror -listen with NATS_URL = %v, want a usage error", err)
	}
	if err := kvRoundTrip(t, env); err != nil { // writes conn/k = v
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"mirror", "-bucket", "conn", "-fold", fold}) }()
	poll.Until(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("mirror exited: %v\n%s", err, errOut.String())
		default:
		}
		return strings.Contains(errOut.String(), `msg="caught up"`), errOut.String()
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("mirror: %v\n%s", err, errOut.String())
	}
	if strings.Contains(errOut.String(), "embedded NATS server started") {
		t.Fatalf("mirror started its embedded server despite NATS_URL:\n%s", errOut.String())
	}
	got, _, err := runMainEnv(t, nil, "", "get", "-fold", fold, "k")
	if err != nil || got != "v" {
		t.Fatalf("the fold does not hold the remote bucket's key: %q, %v", got, err)
	}
}

// TestNATSFlagEnvironment: each flag falls back to its own variable, and
// a flag given wins.
func TestNATSFlagEnvironment(t *testing.T) {
	env := map[string]string{
		"NATS_URL": "nats://env:4222", "NATS_CREDS": "env.creds", "NATS_NKEY": "env.nk",
		"NATS_USER": "env-user", "NATS_PASSWORD": "env-pw", "NATS_TOKEN": "env-token",
		"NATS_CA": "env-ca.pem", "NATS_CERT": "env-cert.pem", "NATS_KEY": "env-key.pem",
	}
	var n natsFlags
	fs := newFlagSet("x")
	n.register(fs, "url")
	if err := fs.Parse([]string{"-user", "flag-user"}); err != nil {
		t.Fatal(err)
	}
	n.applyEnv(func(k string) string { return env[k] })
	cfg, err := n.dialConfig("nats://default:1", "name")
	if err != nil {
		t.Fatal(err)
	}
	want := natskv.DialConfig{URL: "nats://env:4222", CredsFile: "env.creds", NKeyFile: "env.nk", User: "flag-user",
		Password: "env-pw", Token: "env-token", TLSCA: "env-ca.pem", TLSCert: "env-cert.pem", TLSKey: "env-key.pem", Name: "name"}
	if cfg.String() != want.String() || cfg.URL != want.URL || cfg.CredsFile != want.CredsFile || cfg.NKeyFile != want.NKeyFile ||
		cfg.User != want.User || cfg.Password != want.Password || cfg.Token != want.Token || cfg.TLSCA != want.TLSCA ||
		cfg.TLSCert != want.TLSCert || cfg.TLSKey != want.TLSKey || cfg.Name != want.Name {
		t.Fatalf("dialConfig = %+v\nwant %+v", cfg, want)
	}
	// Nothing set anywhere: the command's default URL.
	var empty natsFlags
	empty.applyEnv(func(string) string { return "" })
	if cfg, _ := empty.dialConfig("nats://default:1", ""); cfg.URL != "nats://default:1" || empty.remote() {
		t.Fatalf("no flags, no environment: URL %q, remote %v", cfg.URL, empty.remote())
	}
}

// TestPublishNATSObjectConnectionFlags: the object-store commands take the
// same connection flags and environment (here an NKey from NATS_NKEY).
func TestPublishNATSObjectConnectionFlags(t *testing.T) {
	pub, seed := nkeyUser(t)
	srv := natstest.StartWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	art := filepath.Join(t.TempDir(), "a3")
	objstoretest.MakeArtifact(t, art, 3, "k", "v")
	args := []string{"publish", "-artifact", art, "-to", "nats-object://artifacts/fleet", "-key", "k"}
	if _, _, err := runMainEnv(t, map[string]string{"NATS_URL": srv.URL()}, "", args...); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("publish without the NKey = %v", err)
	}
	out, _, err := runMainEnv(t, map[string]string{"NATS_URL": srv.URL(), "NATS_NKEY": seed}, "", args...)
	if err != nil || !strings.HasPrefix(out, "published k: artifact cursor 3") {
		t.Fatalf("publish with NATS_NKEY: %q, %v", out, err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, _, err := runMain(t, "", "fetch", "-from", "nats-object://artifacts/fleet", "-nats", srv.URL(), "-nkey", seed, "-key", "k", "-out", dst); err != nil {
		t.Fatalf("fetch -nkey: %v", err)
	}
}
