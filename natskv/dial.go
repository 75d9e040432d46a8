package natskv

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// DialTimeout bounds each attempt to reach a server in [Dial].
const DialTimeout = 5 * time.Second

// DialConfig says how [Dial] connects and authenticates.
type DialConfig struct {
	// URL is a server URL or a comma-separated list; empty means
	// nats.DefaultURL. It may carry user:password.
	URL string
	// CredsFile is the path of a .creds file (user JWT and seed).
	CredsFile string
	// Creds is the content of a .creds file, base64-encoded (standard
	// alphabet, padded), for containers that get secrets as variables.
	Creds string
	// Name is the connection name the server shows.
	Name string
}

// String renders the configuration for logs: the URL without its password,
// and only whether credentials are set.
func (c DialConfig) String() string {
	urls, _, _ := splitUserInfo(c.URL)
	s := "url=" + urls
	if c.Creds != "" {
		s += " creds=[redacted]"
	}
	if c.CredsFile != "" {
		s += " creds_file=[redacted]"
	}
	return s
}

// Dial connects to NATS. Exactly one authentication method is used, the
// first that is set: Creds (validated before dialling), then CredsFile, then
// the user and password in the URL, then none. Userinfo is always removed
// from the URL that is dialled and logged; when Creds or CredsFile wins, the
// URL's credentials are ignored rather than sent alongside.
//
// Dial fails fast: an unreachable server returns an error wrapping
// ErrConnectionFailed after at most DialTimeout per server, with no retry.
// Once connected, the connection reconnects without limit (a long-running
// watch should outlive a server restart); opts are applied after these
// defaults and may override them. The caller owns the returned connection
// and must Close it.
func Dial(cfg DialConfig, opts ...nats.Option) (*nats.Conn, error) {
	raw := cfg.URL
	if raw == "" {
		raw = nats.DefaultURL
	}
	urls, user, pass := splitUserInfo(raw)
	base := []nats.Option{
		nats.Timeout(DialTimeout),
		nats.MaxReconnects(-1),
	}
	if cfg.Name != "" {
		base = append(base, nats.Name(cfg.Name))
	}
	switch {
	case cfg.Creds != "":
		decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cfg.Creds))
		if err != nil {
			return nil, fmt.Errorf("%w: inline credentials are not valid base64: %w", ErrConnectionFailed, err)
		}
		if err := validateCreds(decoded); err != nil {
			return nil, fmt.Errorf("%w: inline credentials: %w", ErrConnectionFailed, err)
		}
		base = append(base, nats.UserCredentialBytes(decoded))
	case cfg.CredsFile != "":
		base = append(base, nats.UserCredentials(cfg.CredsFile))
	case user != "":
		base = append(base, nats.UserInfo(user, pass))
	}
	nc, err := nats.Connect(urls, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", ErrConnectionFailed, urls, err)
	}
	return nc, nil
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
// and returns the list with the first user name and password found.
func splitUserInfo(raw string) (urls, user, pass string) {
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
		if user == "" && u.User.Username() != "" {
			user = u.User.Username()
			pass, _ = u.User.Password()
		}
		u.User = nil
		s := u.String()
		if !strings.Contains(p, "://") {
			s = strings.TrimPrefix(s, "nats://")
		}
		parts[i] = s
	}
	return strings.Join(parts, ","), user, pass
}
