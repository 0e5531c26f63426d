package nbd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testTLS returns a server config with a fresh self-signed certificate for
// 127.0.0.1 and a client config trusting it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cairn test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestTLS(t *testing.T) {
	img := testImage()
	srvCfg, cliCfg := testTLS(t)
	_, addr := startServer(t, testCatalog(&memVolume{data: img}), Options{TLS: srvCfg, TLSRequired: true})

	t.Run("required", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		for _, opt := range []uint32{optList, optGo, optStructuredReply} {
			c.option(opt, nil)
			if r := c.reply(); r.typ != repErrTLSReqd {
				t.Fatalf("option %d before TLS: %#x", opt, r.typ)
			}
		}
		c.option(optExportName, []byte("disk"))
		c.expectClosed()
	})

	t.Run("starttls", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.option(optStructuredReply, nil) // refused, and forgotten anyway
		c.reply()
		c.option(optStartTLS, nil)
		if r := c.reply(); r.typ != repAck {
			t.Fatalf("STARTTLS: %#x", r.typ)
		}
		tc := tls.Client(c.c, cliCfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		c = newTestClient(t, tc)
		c.option(optStartTLS, nil)
		if r := c.reply(); r.typ != repErrInvalid {
			t.Fatalf("second STARTTLS: %#x", r.typ)
		}
		c.goExport("disk", true)
		c.request(0, cmdRead, 1, 0, 64<<10, nil)
		if data, _, errno := c.readStructured(1, 0, 64<<10); errno != 0 || !bytes.Equal(data, img[:64<<10]) {
			t.Fatalf("read over TLS: errno %d", errno)
		}
		c.request(0, cmdDisc, 2, 0, 0, nil)
		c.expectClosed()
	})

	t.Run("bad handshake", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.option(optStartTLS, nil)
		c.reply()
		c.write([]byte("this is not a TLS client hello, not at all"))
		c.expectClosed()
	})
}
