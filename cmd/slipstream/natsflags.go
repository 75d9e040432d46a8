package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/slipstream-kv/slipstream/natskv"
)

// natsFlags are the connection flags of every command that talks to a NATS
// server, named as natscli names them. A flag that is not given falls back
// to its environment variable, then to the --context's setting.
type natsFlags struct {
	url      string
	context  string
	creds    string
	nkey     string
	user     string
	password string
	token    string
	tlsCA    string
	tlsCert  string
	tlsKey   string
	tlsFirst bool
}

// natsEnv maps each flag to its environment variable (natscli's names, and
// NATS_TOKEN).
var natsEnv = []struct {
	flag, env string
	field     func(*natsFlags) *string
}{
	{"nats", "NATS_URL", func(n *natsFlags) *string { return &n.url }},
	{"context", "NATS_CONTEXT", func(n *natsFlags) *string { return &n.context }},
	{"creds", "NATS_CREDS", func(n *natsFlags) *string { return &n.creds }},
	{"nkey", "NATS_NKEY", func(n *natsFlags) *string { return &n.nkey }},
	{"user", "NATS_USER", func(n *natsFlags) *string { return &n.user }},
	{"password", "NATS_PASSWORD", func(n *natsFlags) *string { return &n.password }},
	{"token", "NATS_TOKEN", func(n *natsFlags) *string { return &n.token }},
	{"tlsca", "NATS_CA", func(n *natsFlags) *string { return &n.tlsCA }},
	{"tlscert", "NATS_CERT", func(n *natsFlags) *string { return &n.tlsCert }},
	{"tlskey", "NATS_KEY", func(n *natsFlags) *string { return &n.tlsKey }},
}

// register adds the flags; urlHelp describes -nats for this command.
// Defaults are empty so that -h never prints a secret taken from the
// environment.
func (n *natsFlags) register(fs *flag.FlagSet, urlHelp string) {
	fs.StringVar(&n.url, "nats", "", urlHelp+" [$NATS_URL]")
	fs.StringVar(&n.context, "context", "", "natscli context `name` to connect with (see 'nats context ls') [$NATS_CONTEXT]")
	fs.StringVar(&n.creds, "creds", "", "NATS user credentials `file` [$NATS_CREDS]")
	fs.StringVar(&n.nkey, "nkey", "", "NKey user seed `file` [$NATS_NKEY]")
	fs.StringVar(&n.user, "user", "", "NATS user `name` [$NATS_USER]")
	fs.StringVar(&n.password, "password", "", "NATS `password` [$NATS_PASSWORD]")
	fs.StringVar(&n.token, "token", "", "NATS authentication `token` [$NATS_TOKEN]")
	fs.StringVar(&n.tlsCA, "tlsca", "", "CA certificates `file` (PEM) that verify the server [$NATS_CA]")
	fs.StringVar(&n.tlsCert, "tlscert", "", "TLS client certificate `file` (PEM) [$NATS_CERT]")
	fs.StringVar(&n.tlsKey, "tlskey", "", "TLS client key `file` (PEM) [$NATS_KEY]")
	fs.BoolVar(&n.tlsFirst, "tlsfirst", false, "perform the TLS handshake before the server's INFO")
}

// applyEnv fills every flag left empty from its environment variable.
func (n *natsFlags) applyEnv(getenv func(string) string) {
	if getenv == nil {
		return
	}
	for _, e := range natsEnv {
		if p := e.field(n); *p == "" {
			*p = strings.TrimSpace(getenv(e.env))
		}
	}
}

// remote reports whether a server was named (by flag, environment or
// context); mirror starts its embedded server only when none was.
func (n *natsFlags) remote() bool { return n.url != "" || n.context != "" }

// dialConfig builds the natskv configuration: the context (if any) is
// loaded with natscontext and forms the base, which the flags override.
// defaultURL is used when neither names a server.
func (n *natsFlags) dialConfig(defaultURL, name string) (natskv.DialConfig, error) {
	cfg := natskv.DialConfig{
		URL:       n.url,
		CredsFile: n.creds,
		NKeyFile:  n.nkey,
		User:      n.user,
		Password:  n.password,
		Token:     n.token,
		TLSCA:     n.tlsCA,
		TLSCert:   n.tlsCert,
		TLSKey:    n.tlsKey,
		TLSFirst:  n.tlsFirst,
		Name:      name,
	}
	if n.context != "" {
		nctx, err := natscontext.New(n.context, true)
		if err != nil {
			return cfg, fmt.Errorf("%w: load NATS context %q: %w", natskv.ErrConnectionFailed, n.context, err)
		}
		if nctx.JSDomain() != "" || nctx.JSAPIPrefix() != "" {
			return cfg, fmt.Errorf("%w: NATS context %q sets a JetStream domain or API prefix, which slipstream does not support", natskv.ErrConnectionFailed, n.context)
		}
		opts, err := nctx.NATSOptions()
		if err != nil {
			return cfg, fmt.Errorf("%w: NATS context %q: %w", natskv.ErrConnectionFailed, n.context, err)
		}
		cfg.BaseOptions = opts
		if cfg.URL == "" {
			cfg.URL = nctx.ServerURL()
		}
	}
	if cfg.URL == "" {
		cfg.URL = defaultURL
	}
	if err := checkNATSURL(cfg.URL); err != nil {
		cmd := strings.TrimPrefix(name, "slipstream ")
		cmd, _, _ = strings.Cut(cmd, " ")
		return cfg, usageErrorf(cmd, "%s", err.Error())
	}
	return cfg, nil
}

// check refuses a -nats URL (or NATS_URL) with a scheme nats.go cannot
// dial, as a usage error of cmd: commands call it before any side effect.
// dialConfig checks again, after a context may have supplied the URL.
func (n *natsFlags) check(cmd string) error {
	if err := checkNATSURL(n.url); err != nil {
		return usageErrorf(cmd, "%s", err.Error())
	}
	return nil
}

// natsSchemes are the URL schemes nats.go dials. It dials any other scheme
// as plain NATS too (an http:// URL reaches the port, then fails in the
// handshake, or worse, talks to the wrong port), so they are refused first.
var natsSchemes = []string{"nats", "tls", "ws", "wss"}

// checkNATSURL refuses a server URL (a comma-separated list, as nats.go
// takes) with a scheme nats.go cannot dial. Bare HOST:PORT is nats://.
func checkNATSURL(raw string) error {
	for _, u := range strings.Split(raw, ",") {
		scheme, _, ok := strings.Cut(strings.TrimSpace(u), "://")
		if !ok || slices.Contains(natsSchemes, strings.ToLower(scheme)) {
			continue
		}
		return fmt.Errorf("NATS server URL %q: scheme %q is not one NATS speaks; want nats://HOST:PORT (or tls://, ws://, wss://)", strings.TrimSpace(u), scheme)
	}
	return nil
}
