package amqprpc

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
	"testing"
	"time"
)

// testPKI is a throwaway certificate authority with a server certificate for
// localhost and 127.0.0.1 and a client certificate, all made in memory.
type testPKI struct {
	caPEM         []byte // the CA certificate
	serverCertPEM []byte // server certificate, SANs localhost and 127.0.0.1
	serverKeyPEM  []byte // its PKCS #8 private key
	clientCertPEM []byte // client certificate, CN amqprpc-test-client
	clientKeyPEM  []byte // its PKCS #8 private key

	roots      *x509.CertPool  // holds the CA only
	clientCert tls.Certificate // the client certificate with its key
}

// newTestPKI makes a CA, a server and a client certificate with ECDSA P-256
// keys, valid from an hour ago for a day.
func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	now := time.Now()
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "amqprpc test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caKey := testPKIKey(t)
	caDER := testPKISign(t, ca, ca, &caKey.PublicKey, caKey)
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("x509.ParseCertificate(CA) = %v", err)
	}

	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	serverKey := testPKIKey(t)
	serverDER := testPKISign(t, server, caCert, &serverKey.PublicKey, caKey)

	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "amqprpc-test-client"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientKey := testPKIKey(t)
	clientDER := testPKISign(t, client, caCert, &clientKey.PublicKey, caKey)

	p := &testPKI{
		caPEM:         testPKIPEM("CERTIFICATE", caDER),
		serverCertPEM: testPKIPEM("CERTIFICATE", serverDER),
		serverKeyPEM:  testPKIKeyPEM(t, serverKey),
		clientCertPEM: testPKIPEM("CERTIFICATE", clientDER),
		clientKeyPEM:  testPKIKeyPEM(t, clientKey),
		roots:         x509.NewCertPool(),
	}
	p.roots.AddCert(caCert)
	p.clientCert, err = tls.X509KeyPair(p.clientCertPEM, p.clientKeyPEM)
	if err != nil {
		t.Fatalf("tls.X509KeyPair(client) = %v", err)
	}
	return p
}

// clientConfig returns a TLS client configuration trusting the CA only,
// presenting the client certificate when withCert is true.
func (p *testPKI) clientConfig(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}
	if withCert {
		c.Certificates = []tls.Certificate{p.clientCert}
	}
	return c
}

func testPKIKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa.GenerateKey = %v", err)
	}
	return k
}

// testPKISign signs tmpl with a fresh serial number as parent's key.
func testPKISign(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatalf("rand.Int = %v", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate(%q) = %v", tmpl.Subject.CommonName, err)
	}
	return der
}

func testPKIKeyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatalf("x509.MarshalPKCS8PrivateKey = %v", err)
	}
	return testPKIPEM("PRIVATE KEY", der)
}

func testPKIPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// withServerName sets c's ServerName, the name the certificate must hold,
// and returns c.
func withServerName(c *tls.Config, name string) *tls.Config {
	c.ServerName = name
	return c
}
