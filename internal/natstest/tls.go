package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// PKI is a throwaway certificate authority with a server certificate for
// 127.0.0.1 and localhost and a client certificate, written as PEM files
// into a test's temporary directory. Nothing is committed: every test run
// makes its own keys.
type PKI struct {
	CA         string // CA certificate
	ServerCert string
	ServerKey  string
	ClientCert string // signed by the CA, for mutual TLS
	ClientKey  string
	OtherCA    string // a CA that signed neither certificate
}

// NewPKI generates a PKI in t.TempDir().
func NewPKI(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	serial := int64(0)
	sign := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) []byte {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		t.Helper()
		k := key()
		tmpl := &x509.Certificate{
			Subject:               pkix.Name{CommonName: name},
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		der := sign(tmpl, tmpl, &k.PublicKey, k)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, k, der
	}
	ca, caKey, caDER := newCA("slipstream test CA")
	_, _, otherDER := newCA("unrelated test CA")

	var p PKI
	p.CA = write("ca.pem", "CERTIFICATE", caDER)
	p.OtherCA = write("other-ca.pem", "CERTIFICATE", otherDER)

	sk := key()
	p.ServerCert = write("server.pem", "CERTIFICATE", sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &sk.PublicKey, caKey))
	p.ServerKey = write("server-key.pem", "PRIVATE KEY", keyDER(sk))

	ck := key()
	p.ClientCert = write("client.pem", "CERTIFICATE", sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "slipstream client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &ck.PublicKey, caKey))
	p.ClientKey = write("client-key.pem", "PRIVATE KEY", keyDER(ck))
	return p
}

// ServerTLSConfig returns the server side of the PKI; with verifyClients
// the server requires a client certificate signed by the CA.
func (p PKI) ServerTLSConfig(t testing.TB, verifyClients bool) *tls.Config {
	t.Helper()
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: p.ServerCert,
		KeyFile:  p.ServerKey,
		CaFile:   p.CA,
		Verify:   verifyClients,
		Timeout:  2,
	})
	if err != nil {
		t.Fatalf("natstest: server TLS config: %v", err)
	}
	return cfg
}

// StartTLS starts a JetStream server (as [Start]) that requires TLS, and
// with verifyClients also a client certificate signed by p's CA. Its
// [Server.URL] is still nats://; clients upgrade as the server requires.
func StartTLS(t testing.TB, p PKI, verifyClients bool) *Server {
	t.Helper()
	return StartWith(t, func(o *server.Options) {
		o.TLS = true
		o.TLSVerify = verifyClients
		o.TLSConfig = p.ServerTLSConfig(t, verifyClients)
		o.TLSTimeout = 2
	})
}
