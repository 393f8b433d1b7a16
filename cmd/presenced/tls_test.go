package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "presenced.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestHTTPListenerTLS: with http.tls presenced serves its API, readiness and metrics over
// HTTPS to a client that verifies its certificate, refuses plain HTTP, and -healthcheck asks
// it over HTTPS.
func TestHTTPListenerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	cfg.HTTP.TLS = HTTPTLSConfig{CertFile: certFile, KeyFile: keyFile}
	d := startDaemon(t, cfg)
	addr := strings.TrimPrefix(d.base, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/readyz")
		if err != nil {
			t.Fatalf("GET https://%s/readyz: %v", addr, err)
		}
		var rd readiness
		json.NewDecoder(resp.Body).Decode(&rd)
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatal("answered without TLS")
		}
		if resp.StatusCode == http.StatusOK && rd.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready over HTTPS after 20 s: %d %+v", resp.StatusCode, rd)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "presenced_ready 1") {
		t.Errorf("/metrics over HTTPS lacks presenced_ready 1")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
	var out, errb strings.Builder
	environ := []string{"PRESENCED_HTTP_LISTEN=" + addr, "PRESENCED_HTTP_TLS_CERT_FILE=" + certFile, "PRESENCED_HTTP_TLS_KEY_FILE=" + keyFile}
	if code := realMain([]string{"-healthcheck"}, environ, &out, &errb); code != 0 || !strings.Contains(out.String(), "https://") {
		t.Errorf("-healthcheck over TLS: exit %d, %s%s", code, out.String(), errb.String())
	}
}

// TestHTTPTLSConfigErrors: a certificate without its key, a key without its certificate, and
// files that are not a pair are configuration errors naming the key.
func TestHTTPTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	base := []string{"PRESENCED_ASTERISK_AMI_SECRET=x", "PRESENCED_ASTERISK_ARI_PASSWORD=x"}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PRESENCED_HTTP_TLS_CERT_FILE=" + certFile}, "http.tls.key_file: missing"},
		{[]string{"PRESENCED_HTTP_TLS_KEY_FILE=" + keyFile}, "http.tls.cert_file: missing"},
		{[]string{"PRESENCED_HTTP_TLS_CERT_FILE=" + keyFile, "PRESENCED_HTTP_TLS_KEY_FILE=" + certFile}, "http.tls.cert_file: " + keyFile},
		{[]string{"PRESENCED_HTTP_TLS_CERT_FILE=" + filepath.Join(dir, "none"), "PRESENCED_HTTP_TLS_KEY_FILE=" + keyFile}, "no such file"},
	} {
		_, _, err := loadConfig(nil, append(base, tc.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.env, err, tc.want)
		}
	}
	if _, _, err := loadConfig(nil, append(base, "PRESENCED_HTTP_TLS_CERT_FILE="+certFile, "PRESENCED_HTTP_TLS_KEY_FILE="+keyFile), io.Discard); err != nil {
		t.Errorf("a valid pair: %v", err)
	}
}
