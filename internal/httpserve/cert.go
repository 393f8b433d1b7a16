package httpserve

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckEvery is how often, at most, a handshake makes the CertFiles look whether the
// files changed.
const certCheckEvery = time.Second

// CertFiles serves a certificate and key from PEM files and reads them again when they change
// (a renewal by certbot or an ACME client replaces them): GetCertificate looks at the files'
// modification times and sizes at most once a second and, when either changed, loads the
// pair. A pair that does not load (half written, a key that does not match) is logged and the
// certificate served so far is kept; the next look tries again.
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp // the files as they were when cert was loaded, or last failed to
	lastCheck time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadCertFiles loads the pair, which must be valid now; log receives the reloads.
func LoadCertFiles(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp, c.lastCheck = cert, stamp, time.Now()
	return c, nil
}

func (c *CertFiles) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, fmt.Errorf("tls: %w", err)
		}
		s[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return s, nil
}

func (c *CertFiles) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: certificate %s: %w", c.certFile, err)
		}
	}
	return &cert, nil
}

// Reload reads the files again now, whether they changed or not (a configuration reload).
// On an error the certificate served so far stays.
func (c *CertFiles) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload(time.Now(), true)
}

// reload loads the pair when forced or when the files changed since the last load; c.mu held.
func (c *CertFiles) reload(now time.Time, force bool) error {
	c.lastCheck = now
	stamp, err := c.stamps()
	if err != nil {
		c.log.Error("tls: cannot read the certificate files; serving the certificate loaded before", "err", err)
		return err
	}
	if !force && stamp == c.stamp {
		return nil
	}
	c.stamp = stamp // a pair that does not load is tried again once the files change again
	cert, err := c.load()
	if err != nil {
		c.log.Error("tls: the changed certificate files do not load; serving the certificate loaded before", "err", err)
		return err
	}
	c.cert = cert
	c.log.Info("tls: certificate loaded", "file", c.certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// GetCertificate is tls.Config.GetCertificate: the certificate, read again when its files
// changed.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.lastCheck) >= certCheckEvery {
		c.reload(now, false)
	}
	return c.cert, nil
}

// TLSConfig is a server configuration serving c's certificate, TLS 1.2 at least.
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}
