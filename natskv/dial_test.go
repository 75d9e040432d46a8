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
