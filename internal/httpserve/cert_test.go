package httpserve

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testCA signs server certificates for 127.0.0.1 that clients trusting it accept.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presenced test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a certificate for 127.0.0.1 named cn, and its key, as PEM files.
func (ca *testCA) issue(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// writeFile replaces path, as a renewal does, with a modification time of its own.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	// Two writes within the file system's timestamp granularity would look unchanged.
	mod := time.Now().Add(time.Duration(len(b)%1000+1) * time.Millisecond)
	if fi, err := os.Stat(path); err == nil && !fi.ModTime().Before(mod) {
		mod = fi.ModTime().Add(time.Second)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

// served is the common name of the certificate a new TLS connection to addr gets, and the
// body of GET /.
func served(t *testing.T, addr string, pool *x509.CertPool) (string, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("GET https://%s/: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatal("no TLS peer certificate")
	}
	if resp.ProtoMajor != 1 {
		t.Errorf("served over %s, want HTTP/1.1", resp.Proto)
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName, string(body)
}

// TestTLSServesAndReloadsChangedCertificate: with TLS the listener serves HTTPS that a client
// verifying the certificate accepts; replaced certificate files are served to new connections
// without a restart; files that do not load leave the last good certificate served, and the
// next good pair is taken.
func TestTLSServesAndReloadsChangedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	ca.issue(t, "first", certFile, keyFile)
	var logs bytes.Buffer
	cf, err := LoadCertFiles(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, addr := start(t, Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxConnections: 8,
		MaxBodyBytes: 10, TLS: cf.TLSConfig()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	if cn, body := served(t, addr, ca.pool); cn != "first" || body != "ok" {
		t.Fatalf("served %q %q, want the first certificate and ok", cn, body)
	}

	// A plain HTTP request to the TLS listener is not served.
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP to the TLS listener answered 200 %q", b)
		}
	}

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cn, _ := served(t, addr, ca.pool)
			if cn == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still serving %q 10 s after the files changed, want %q; log:\n%s", cn, want, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ca.issue(t, "renewed", certFile, keyFile)
	waitFor("renewed")

	// A certificate whose key is another's does not load: the renewed one stays.
	other := filepath.Join(dir, "other")
	ca.issue(t, "mismatched", other+".crt", other+".key")
	b, _ := os.ReadFile(other + ".crt")
	writeFile(t, certFile, b)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "do not load") {
		if time.Now().After(deadline) {
			t.Fatalf("a mismatched pair was not reported; log:\n%s", logs.String())
		}
		served(t, addr, ca.pool)
		time.Sleep(100 * time.Millisecond)
	}
	if cn, _ := served(t, addr, ca.pool); cn != "renewed" {
		t.Fatalf("after a pair that does not load: serving %q, want renewed", cn)
	}
	ca.issue(t, "third", certFile, keyFile)
	waitFor("third")

	// Reload reads them now.
	ca.issue(t, "reloaded", certFile, keyFile)
	if err := cf.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn, _ := served(t, addr, ca.pool); cn != "reloaded" {
		t.Fatalf("after Reload: serving %q", cn)
	}
}

func TestLoadCertFilesErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := LoadCertFiles(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Fatalf("missing files: %v", err)
	}
	writeFile(t, certFile, []byte("not a certificate"))
	writeFile(t, keyFile, []byte("not a key"))
	if _, err := LoadCertFiles(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Fatalf("garbage: %v", err)
	}
}

// TestTLSConnectionOverTheCapIsAnswered503: over the connection cap, a TLS client gets the
// 503 over TLS, not plain text it cannot read.
func TestTLSConnectionOverTheCapIsAnswered503(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	ca.issue(t, "capped", certFile, keyFile)
	cf, err := LoadCertFiles(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxConnections: 1, MaxBodyBytes: 10,
		TLS: cf.TLSConfig()}, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	go s.Serve()
	defer stopNow(s)
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := dial()
	defer first.Close()
	io.WriteString(first, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := bufio.NewReader(first).ReadString('\n'); !strings.Contains(line, "200") {
		t.Fatalf("first connection: %q, want 200", line)
	}
	second := dial()
	defer second.Close()
	io.WriteString(second, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(second)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 503 ") {
		t.Fatalf("second TLS connection over the cap of 1: %q, want 503", answer)
	}
}
