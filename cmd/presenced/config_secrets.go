package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// readSecretFiles fills secrets from their *_file keys (trailing newline removed), the users'
// token_file and pin_file included.
func (c *Config) readSecretFiles() error {
	if c.API.AdminTokenFile != "" && c.API.AdminTokenHash != "" {
		return errors.New("api.admin_token_file: set only one of api.admin_token, api.admin_token_hash and api.admin_token_file")
	}
	for _, s := range []struct {
		key, fileKey string
		value        *Secret
		file         string
	}{
		{"asterisk.ami.secret", "asterisk.ami.secret_file", &c.Asterisk.AMI.Secret, c.Asterisk.AMI.SecretFile},
		{"asterisk.ari.password", "asterisk.ari.password_file", &c.Asterisk.ARI.Password, c.Asterisk.ARI.PasswordFile},
		{"redis.url", "redis.url_file", &c.Redis.URL, c.Redis.URLFile},
		{"redis.password", "redis.password_file", &c.Redis.Password, c.Redis.PasswordFile},
		{"redis.sentinel.password", "redis.sentinel.password_file", &c.Redis.Sentinel.Password, c.Redis.Sentinel.PasswordFile},
		{"api.admin_token", "api.admin_token_file", &c.API.AdminToken, c.API.AdminTokenFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			return fmt.Errorf("%s: set either %s or %s, not both", s.key, s.key, s.fileKey)
		}
		b, err := os.ReadFile(s.file)
		if err != nil && c.offline {
			c.offlineWarnings = append(c.offlineWarnings, fmt.Sprintf("%s: %v (not needed here; the daemon needs it)", s.fileKey, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.fileKey, err)
		}
		val := strings.TrimRight(string(b), "\r\n")
		if val == "" {
			return fmt.Errorf("%s: file %s is empty", s.fileKey, s.file)
		}
		*s.value = Secret(val)
	}
	return c.readUserSecretFiles()
}

// readUserSecretFiles reads the users' token_file and pin_file into Token and PIN, leaving the
// *_file keys set (presence's validation then names them in its errors). A file key next to
// its plain or hashed sibling is refused here, naming the file key.
func (c *Config) readUserSecretFiles() error {
	var problems []string
	for i := range c.Users {
		u := &c.Users[i]
		path := fmt.Sprintf("users[%d]", i)
		if u.ID != "" {
			path = fmt.Sprintf("users[%d] (%s)", i, u.ID)
		}
		for _, f := range []struct {
			key, siblings string
			file          string
			plain, hash   *string
		}{
			{"token_file", "token, token_hash and token_file", u.TokenFile, &u.Token, &u.TokenHash},
			{"pin_file", "pin, pin_hash and pin_file", u.PINFile, &u.PIN, &u.PINHash},
		} {
			if f.file == "" {
				continue
			}
			if *f.plain != "" || *f.hash != "" {
				problems = append(problems, fmt.Sprintf("%s.%s: set only one of %s", path, f.key, f.siblings))
				continue
			}
			b, err := os.ReadFile(f.file)
			if err != nil && c.offline {
				c.offlineWarnings = append(c.offlineWarnings, fmt.Sprintf("%s.%s: %v (not needed here; the daemon needs it)", path, f.key, err))
				continue
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %v", path, f.key, err))
				continue
			}
			val := strings.TrimRight(string(b), "\r\n")
			if val == "" {
				problems = append(problems, fmt.Sprintf("%s.%s: file %s is empty", path, f.key, f.file))
				continue
			}
			*f.plain = val
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}
