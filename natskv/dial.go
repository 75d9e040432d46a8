package natskv

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// DialTimeout bounds each attempt to reach a server in [Dial].
const DialTimeout = 5 * time.Second

// DialConfig says how [Dial] connects and authenticates. The fields mirror
// the natscli flags of the same meaning (--server, --creds, --nkey, --user,
// --password, --tlscert, --tlskey, --tlsca, --tlsfirst).
type DialConfig struct {
	// URL is a server URL or a comma-separated list; empty means
	// nats.DefaultURL. It may carry user:password or a token
	// (nats://TOKEN@host). A tls:// URL requires TLS.
	URL string
	// CredsFile is the path of a .creds file (user JWT and seed).
	CredsFile string
	// Creds is the content of a .creds file, base64-encoded (standard
	// alphabet, padded), for containers that get secrets as variables.
	Creds string
	// NKeyFile is the path of a file holding an NKey user seed (SU…).
	NKeyFile string
	// User and Password authenticate with a user name and password.
	User     string
	Password string
	// Token authenticates with a token.
	Token string

	// TLSCA is a PEM file of the certificate authorities that verify the
	// server (default: the system's).
	TLSCA string
	// TLSCert and TLSKey are PEM files of a client certificate and its key,
	// for servers that verify clients. Set both or neither.
	TLSCert string
	TLSKey  string
	// TLSFirst performs the TLS handshake before the server's INFO, for
	// servers configured with handshake_first.
	TLSFirst bool

	// BaseOptions are applied first, under everything else: for example
	// the options of a saved natscli context (natscontext's NATSOptions).
	// The fields above override them, and an authentication method set
	// above (or in the URL) replaces theirs instead of being sent beside it.
	BaseOptions []nats.Option

	// Name is the connection name the server shows.
	Name string
}

// String renders the configuration for logs: the URL without its userinfo,
// the authentication method and TLS files, never a secret.
func (c DialConfig) String() string {
	urls, _, _, _ := splitUserInfo(c.URL)
	s := "url=" + urls
	if m := c.authMethod(); m != "" {
		s += " auth=" + m
	}
	if c.TLSCA != "" {
		s += " tls_ca=" + c.TLSCA
	}
	if c.TLSCert != "" {
		s += " tls_cert=" + c.TLSCert
	}
	if c.TLSFirst {
		s += " tls_first"
	}
	return s
}

// authMethod names the explicit authentication Dial uses, "" for none.
func (c DialConfig) authMethod() string {
	_, user, _, token := splitUserInfo(c.URL)
	switch {
	case c.Creds != "":
		return "creds"
	case c.CredsFile != "":
		return "creds_file"
	case c.NKeyFile != "":
		return "nkey"
	case c.User != "":
		return "user"
	case c.Token != "":
		return "token"
	case user != "":
		return "url_user"
	case token != "":
		return "url_token"
	}
	return ""
}

// Dial connects to NATS. Exactly one authentication method is used, the
// first that is set: Creds (validated before dialling), CredsFile,
// NKeyFile, User and Password, Token, then the user and password or token
// in the URL, then whatever BaseOptions set, then none. Userinfo is always removed
// from the URL that is dialled and logged; when another method wins, the
// URL's credentials are ignored rather than sent alongside.
//
// Dial fails fast: an unreachable server, or one that refuses the
// credentials or the TLS handshake, returns an error wrapping
// ErrConnectionFailed after at most DialTimeout per server, with no retry.
// An unusable configuration (a client certificate without its key, an
// unreadable seed file) also wraps ErrConnectionFailed. Once
// connected, the connection reconnects without limit (a long-running watch
// should outlive a server restart); opts are applied after these defaults
// and may override them. The caller owns the returned connection and must
// Close it.
func Dial(cfg DialConfig, opts ...nats.Option) (*nats.Conn, error) {
	base := slices.Clone(cfg.BaseOptions)
	raw := cfg.URL
	if raw == "" {
		raw = nats.DefaultURL
	}
	urls, user, pass, token := splitUserInfo(raw)
	base = append(base, nats.Timeout(DialTimeout), nats.MaxReconnects(-1))
	if cfg.Name != "" {
		base = append(base, nats.Name(cfg.Name))
	}
	var auth nats.Option
	switch {
	case cfg.Creds != "":
		decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cfg.Creds))
		if err != nil {
			return nil, fmt.Errorf("%w: inline credentials are not valid base64: %w", ErrConnectionFailed, err)
		}
		if err := validateCreds(decoded); err != nil {
			return nil, fmt.Errorf("%w: inline credentials: %w", ErrConnectionFailed, err)
		}
		auth = nats.UserCredentialBytes(decoded)
	case cfg.CredsFile != "":
		auth = nats.UserCredentials(cfg.CredsFile)
	case cfg.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey seed file: %w", ErrConnectionFailed, err)
		}
		auth = opt
	case cfg.User != "":
		auth = nats.UserInfo(cfg.User, cfg.Password)
	case cfg.Token != "":
		auth = nats.Token(cfg.Token)
	case user != "":
		auth = nats.UserInfo(user, pass)
	case token != "":
		auth = nats.Token(token)
	}
	if auth != nil {
		// Replace whatever the context configured.
		base = append(base, clearAuth, auth)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("%w: a TLS client certificate needs both the certificate and the key file", ErrConnectionFailed)
	}
	if cfg.TLSCert != "" {
		base = append(base, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSCA != "" {
		base = append(base, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSFirst {
		base = append(base, nats.TLSHandshakeFirst())
	}
	nc, err := nats.Connect(urls, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", ErrConnectionFailed, urls, err)
	}
	return nc, nil
}

// clearAuth drops every credential an earlier option (a context's) set.
func clearAuth(o *nats.Options) error {
	o.User, o.Password, o.Token = "", "", ""
	o.UserInfo = nil
	o.TokenHandler = nil
	o.Nkey = ""
	o.UserJWT = nil
	o.SignatureCB = nil
	return nil
}

// validateCreds checks that a .creds file holds a user JWT and a seed.
func validateCreds(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("not UTF-8 text")
	}
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("no user JWT: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("no seed: %w", err)
	}
	kp.Wipe()
	return nil
}

// splitUserInfo removes userinfo from every URL of a comma-separated list
// and returns the list with the first credentials found: a user name and
// password, or a token (a user name without a password, as nats.go reads
// nats://TOKEN@host).
func splitUserInfo(raw string) (urls, user, pass, token string) {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		parts[i] = p
		if !strings.Contains(p, "@") {
			continue
		}
		withScheme := p
		if !strings.Contains(p, "://") {
			withScheme = "nats://" + p
		}
		u, err := url.Parse(withScheme)
		if err != nil || u.User == nil {
			continue
		}
		if user == "" && token == "" && u.User.Username() != "" {
			if pw, ok := u.User.Password(); ok {
				user, pass = u.User.Username(), pw
			} else {
				token = u.User.Username()
			}
		}
		u.User = nil
		s := u.String()
		if !strings.Contains(p, "://") {
			s = strings.TrimPrefix(s, "nats://")
		}
		parts[i] = s
	}
	return strings.Join(parts, ","), user, pass, token
}
