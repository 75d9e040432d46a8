package natskv_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// operatorServer starts a server in operator (JWT) mode with one account,
// and returns it with the .creds content of a user of that account.
func operatorServer(t *testing.T) (*natstest.Server, []byte) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opKP, err := nkeys.CreateOperator()
	must(err)
	opPub, err := opKP.PublicKey()
	must(err)
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(opKP)
	must(err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	must(err)

	accKP, err := nkeys.CreateAccount()
	must(err)
	accPub, err := accKP.PublicKey()
	must(err)
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(opKP)
	must(err)

	userKP, err := nkeys.CreateUser()
	must(err)
	userPub, err := userKP.PublicKey()
	must(err)
	uc := jwt.NewUserClaims(userPub)
	userJWT, err := uc.Encode(accKP)
	must(err)
	seed, err := userKP.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)

	resolver := &server.MemAccResolver{}
	must(resolver.Store(accPub, accJWT))
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.JetStream = false
		o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		o.AccountResolver = resolver
	})
	return srv, creds
}

func TestDialCredentialPriority(t *testing.T) {
	srv, creds := operatorServer(t)
	host := strings.TrimPrefix(srv.URL(), "nats://")
	inline := base64.StdEncoding.EncodeToString(creds)
	file := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	wrongURL := "nats://mallory:wrong@" + host

	t.Run("inline_creds_win_over_url", func(t *testing.T) {
		nc, err := natskv.Dial(natskv.DialConfig{URL: wrongURL, Creds: inline, Name: "test"})
		if err != nil {
			t.Fatalf("Dial with inline creds: %v", err)
		}
		defer nc.Close()
		// This server has no JetStream: Open says so instead of hanging.
		_, err = natskv.Open(t.Context(), nc, natskv.Config{Bucket: "nojs", Timeout: 2 * time.Second, Logger: quietLogger()})
		if !errors.Is(err, slipstream.ErrOperationFailed) || !strings.Contains(err.Error(), "jetstream not enabled") {
			t.Fatalf("Open without JetStream = %v", err)
		}
	})
	t.Run("creds_file_wins_over_url", func(t *testing.T) {
		nc, err := natskv.Dial(natskv.DialConfig{URL: wrongURL, CredsFile: file})
		if err != nil {
			t.Fatalf("Dial with a creds file: %v", err)
		}
		nc.Close()
	})
	t.Run("inline_creds_win_over_creds_file", func(t *testing.T) {
		// The inline value is checked first and is bad: the (good) file is
		// never consulted.
		_, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), Creds: "not base64!", CredsFile: file})
		if !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), "inline credentials") {
			t.Fatalf("Dial = %v, want an inline-credentials error", err)
		}
	})
	t.Run("inline_creds_validated_before_dialling", func(t *testing.T) {
		for _, bad := range []string{
			base64.StdEncoding.EncodeToString([]byte("no jwt here")),
			base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0xfd}),
		} {
			// Port 1 is never dialled: the error names the credentials.
			_, err := natskv.Dial(natskv.DialConfig{URL: "nats://127.0.0.1:1", Creds: bad})
			if !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), "inline credentials") {
				t.Fatalf("Dial(bad creds) = %v", err)
			}
		}
	})
	t.Run("no_credentials_is_refused_by_this_server", func(t *testing.T) {
		_, err := natskv.Dial(natskv.DialConfig{URL: srv.URL()})
		if !errors.Is(err, natskv.ErrConnectionFailed) {
			t.Fatalf("Dial without creds = %v", err)
		}
	})
}

func TestDialURLUserInfo(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Username, o.Password = "alice", "s3cret"
	})
	host := strings.TrimPrefix(srv.URL(), "nats://")
	nc, err := natskv.Dial(natskv.DialConfig{URL: "nats://alice:s3cret@" + host})
	if err != nil {
		t.Fatalf("Dial with URL credentials: %v", err)
	}
	if u := nc.ConnectedUrlRedacted(); strings.Contains(u, "s3cret") {
		t.Errorf("connected URL carries the password: %s", u)
	}
	nc.Close()
	_, err = natskv.Dial(natskv.DialConfig{URL: "nats://alice:wrong-pass@" + host})
	if !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial with a wrong password = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestDialUnreachableServerFailsFast(t *testing.T) {
	srv := natstest.Start(t)
	url := srv.URL()
	srv.Shutdown()
	start := time.Now()
	_, err := natskv.Dial(natskv.DialConfig{URL: url})
	if !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), url) {
		t.Fatalf("Dial(stopped server) = %v; want ErrConnectionFailed naming %s", err, url)
	}
	if d := time.Since(start); d > natskv.DialTimeout {
		t.Fatalf("Dial took %v to fail", d)
	}
}

func TestDialedConnectionOpensBucket(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), Name: "slipstream-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, err := natskv.Open(t.Context(), nc, natskv.Config{Bucket: "dialed", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "k", "v")
}

// hostOf returns host:port of a test server.
func hostOf(srv *natstest.Server) string { return strings.TrimPrefix(srv.URL(), "nats://") }

func TestDialTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.StartTLS(t, pki, false)
	host := hostOf(srv)
	for _, tc := range []struct {
		name string
		cfg  natskv.DialConfig
		ok   bool
	}{
		{"tls_url_with_ca", natskv.DialConfig{URL: "tls://" + host, TLSCA: pki.CA}, true},
		{"nats_url_upgrades_with_ca", natskv.DialConfig{URL: "nats://" + host, TLSCA: pki.CA}, true},
		{"tls_url_with_system_roots_refused", natskv.DialConfig{URL: "tls://" + host}, false},
		{"wrong_ca_refused", natskv.DialConfig{URL: "tls://" + host, TLSCA: pki.OtherCA}, false},
		{"missing_ca_file", natskv.DialConfig{URL: "tls://" + host, TLSCA: filepath.Join(t.TempDir(), "nope.pem")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := natskv.Dial(tc.cfg)
			if !tc.ok {
				if !errors.Is(err, natskv.ErrConnectionFailed) {
					t.Fatalf("Dial = %v, want ErrConnectionFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer nc.Close()
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Fatalf("connection is not TLS: %v", err)
			}
			b, err := natskv.Open(t.Context(), nc, natskv.Config{Bucket: "tls", Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			put(t, b, "k", "v")
		})
	}
}

func TestDialMutualTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.StartTLS(t, pki, true)
	url := "tls://" + hostOf(srv)
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, TLSCA: pki.CA, TLSCert: pki.ClientCert, TLSKey: pki.ClientKey})
	if err != nil {
		t.Fatalf("Dial with a client certificate: %v", err)
	}
	nc.Close()
	if _, err := natskv.Dial(natskv.DialConfig{URL: url, TLSCA: pki.CA}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial without a client certificate = %v, want ErrConnectionFailed", err)
	}
	for _, cfg := range []natskv.DialConfig{
		{URL: url, TLSCA: pki.CA, TLSCert: pki.ClientCert},
		{URL: url, TLSCA: pki.CA, TLSKey: pki.ClientKey},
	} {
		if _, err := natskv.Dial(cfg); !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), "both") {
			t.Fatalf("Dial with half a client certificate = %v", err)
		}
	}
}

// nkeyServer starts a server that admits one NKey user and returns it with
// the path of that user's seed file.
func nkeyServer(t *testing.T) (*natstest.Server, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})
	return srv, file
}

func TestDialNKey(t *testing.T) {
	srv, seedFile := nkeyServer(t)
	nc, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), NKeyFile: seedFile})
	if err != nil {
		t.Fatalf("Dial with an NKey seed: %v", err)
	}
	b, err := natskv.Open(t.Context(), nc, natskv.Config{Bucket: "nkey", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "k", "v")
	nc.Close()

	if _, err := natskv.Dial(natskv.DialConfig{URL: srv.URL()}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial without the NKey = %v", err)
	}
	other, _ := nkeyServer(t)
	_, otherSeed := nkeyServer(t)
	if _, err := natskv.Dial(natskv.DialConfig{URL: other.URL(), NKeyFile: otherSeed}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial with another user's seed = %v", err)
	}
	missing := filepath.Join(t.TempDir(), "none.nk")
	if _, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), NKeyFile: missing}); !errors.Is(err, natskv.ErrConnectionFailed) || !strings.Contains(err.Error(), "nkey") {
		t.Fatalf("Dial with a missing seed file = %v", err)
	}
}

func TestDialToken(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.Authorization = "t0k3n" })
	host := hostOf(srv)
	for _, cfg := range []natskv.DialConfig{
		{URL: srv.URL(), Token: "t0k3n"},
		{URL: "nats://t0k3n@" + host}, // nats.go's token-in-URL form
		{URL: "nats://wrong@" + host, Token: "t0k3n"},
	} {
		nc, err := natskv.Dial(cfg)
		if err != nil {
			t.Fatalf("Dial(%v): %v", cfg, err)
		}
		nc.Close()
	}
	for _, cfg := range []natskv.DialConfig{{URL: srv.URL()}, {URL: srv.URL(), Token: "wrong"}} {
		if _, err := natskv.Dial(cfg); !errors.Is(err, natskv.ErrConnectionFailed) {
			t.Fatalf("Dial(%v) = %v", cfg, err)
		}
	}
}

func TestDialUserPasswordFields(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Username, o.Password = "alice", "s3cret"
	})
	host := hostOf(srv)
	// The fields win over the URL's userinfo.
	nc, err := natskv.Dial(natskv.DialConfig{URL: "nats://mallory:wrong@" + host, User: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatalf("Dial with User/Password: %v", err)
	}
	nc.Close()
	if _, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), User: "alice", Password: "nope"}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial with a wrong password = %v", err)
	}
}

// TestDialAuthReplacesBaseOptions: an explicit method replaces the one in
// BaseOptions (a context's) instead of being sent beside it, and without
// one the base's is used.
func TestDialAuthReplacesBaseOptions(t *testing.T) {
	srv, seedFile := nkeyServer(t)
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natskv.Dial(natskv.DialConfig{URL: srv.URL(), BaseOptions: []nats.Option{nkeyOpt}})
	if err != nil {
		t.Fatalf("Dial with the base's NKey: %v", err)
	}
	nc.Close()
	// A token set explicitly replaces the base's NKey, so this server
	// refuses the connection.
	_, err = natskv.Dial(natskv.DialConfig{URL: srv.URL(), Token: "x", BaseOptions: []nats.Option{nkeyOpt}})
	if !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial with a token over the base's NKey = %v, want refused", err)
	}
	// And the other way round: the base's user/password is replaced by the
	// explicit NKey.
	nc, err = natskv.Dial(natskv.DialConfig{URL: srv.URL(), NKeyFile: seedFile, BaseOptions: []nats.Option{nats.UserInfo("x", "y")}})
	if err != nil {
		t.Fatalf("Dial with an NKey over the base's user: %v", err)
	}
	nc.Close()
}

func TestDialTLSFirst(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.TLS = true
		o.TLSConfig = pki.ServerTLSConfig(t, false)
		o.TLSTimeout = 2
		o.TLSHandshakeFirst = true
	})
	url := "tls://" + hostOf(srv)
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, TLSCA: pki.CA, TLSFirst: true})
	if err != nil {
		t.Fatalf("Dial with TLSFirst: %v", err)
	}
	nc.Close()
	if _, err := natskv.Dial(natskv.DialConfig{URL: url, TLSCA: pki.CA}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Dial without TLSFirst to a handshake-first server = %v", err)
	}
}
