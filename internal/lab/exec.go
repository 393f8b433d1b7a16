package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	tcexec "github.com/testcontainers/testcontainers-go/exec"
)

// Exec runs a command in the lab Asterisk container (not through Asterisk: a shell, sed on a
// config file) and returns its output. A non-zero exit code is an error carrying the output.
func (e *Env) Exec(ctx context.Context, cmd ...string) (string, error) {
	if e.asterisk == nil {
		return "", errors.New("lab: asterisk is not running")
	}
	code, out, err := e.asterisk.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return "", fmt.Errorf("lab: exec %q: %w", cmd, err)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		return "", fmt.Errorf("lab: exec %q: read output: %w", cmd, err)
	}
	if code != 0 {
		return string(b), fmt.Errorf("lab: exec %q: exit code %d: %s", cmd, code, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// SetPersistentMembers switches queues.conf's persistentmembers in the lab Asterisk; it takes
// effect at the next start of app_queue ("core restart now"). The lab ships with yes.
func (e *Env) SetPersistentMembers(ctx context.Context, on bool) error {
	v := "no"
	if on {
		v = "yes"
	}
	_, err := e.Exec(ctx, "sed", "-i", "-E", `s/^persistentmembers *=.*/persistentmembers = `+v+`/`, QueuesConf)
	return err
}
