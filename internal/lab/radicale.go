package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Users of the lab CalDAV server (testdata/radicale/users), each owning the calendars under
// /<user>/.
const (
	RadicaleUser      = "alice"
	RadicalePassword  = "alice-secret"
	RadicaleUser2     = "bob"
	RadicalePassword2 = "bob-secret"
)

// BuildRadicaleImage runs testdata/lab/build-radicale.sh, which builds the lab's CalDAV
// server image (Debian's radicale on the lab base) when missing, and returns its reference.
func BuildRadicaleImage(ctx context.Context) (string, error) {
	script := filepath.Join(RepoRoot(), "testdata", "lab", "build-radicale.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build radicale image (%s): %w\n%s", script, err, lastLines(stderr.String(), 30))
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", fmt.Errorf("build radicale image (%s): printed no image name", script)
	}
	return lines[len(lines)-1], nil
}

func (e *Env) startRadicale(ctx context.Context) error {
	image, err := BuildRadicaleImage(ctx)
	if err != nil {
		return err
	}
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithLabels(map[string]string{ContainerLabel: "radicale"}),
		testcontainers.WithExposedPorts("5232/tcp"),
		testcontainers.WithHostConfigModifier(loopbackOnly("5232/tcp")),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("Radicale server ready")),
	)
	if ctr != nil {
		e.radicale = ctr
	}
	if err != nil {
		return fmt.Errorf("start radicale container from %s: %w", image, err)
	}
	addr, err := loopbackEndpoint(ctx, ctr, "5232/tcp")
	if err != nil {
		return fmt.Errorf("radicale port: %w", err)
	}
	e.RadicaleURL = "http://" + addr + "/"
	return nil
}
