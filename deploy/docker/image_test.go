// Package docker_test builds the presenced image from the Dockerfile's "prebuilt" target (the
// way make images does, needing no registry) and checks what it promises: a stripped static
// binary, the CA certificates, the OCI labels, and a HEALTHCHECK that reports a running
// presenced healthy.
package docker_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestImage(t *testing.T) {
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// A build context of its own: what make images puts in bin/, and what the Dockerfile copies.
	ctx := t.TempDir()
	run(t, top, "cp", "-r", "--parents", "Dockerfile", "deploy/docker/state", ctx)
	if err := os.MkdirAll(filepath.Join(ctx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, top, "cp", "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctx, "bin"))
	// The binary as make images builds it: the Makefile's bin recipe, into this context.
	bin := filepath.Join(ctx, "bin", "presenced")
	var recipe string
	for _, l := range strings.Split(run(t, top, "make", "-n", "bin", "COMMIT=abc123"), "\n") {
		if strings.Contains(l, "./cmd/presenced") && strings.Contains(l, " -o bin/presenced ") {
			recipe = strings.Replace(l, " -o bin/presenced ", " -o "+bin+" ", 1)
		}
	}
	if recipe == "" {
		t.Fatal("make -n bin: no go build -o bin/presenced ./cmd/presenced")
	}
	run(t, top, "bash", "-c", recipe)

	image := fmt.Sprintf("presenced-imagetest:%d", time.Now().UnixNano())
	run(t, ctx, "docker", "build", "-q", "--target", "prebuilt", "--build-arg", "VERSION=imagetest",
		"--build-arg", "COMMIT=abc123", "--build-arg", "CREATED=2026-12-06T00:00:00Z", "-t", image, ".")
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	var inspect []struct {
		Config struct {
			Labels      map[string]string
			Healthcheck struct{ Test []string }
		}
	}
	if err := json.Unmarshal([]byte(run(t, ctx, "docker", "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	labels := inspect[0].Config.Labels
	for k, want := range map[string]string{
		"org.opencontainers.image.title":    "presenced",
		"org.opencontainers.image.version":  "imagetest",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  "2026-12-06T00:00:00Z",
		"org.opencontainers.image.source":   "https://github.com/presenced/presenced",
	} {
		if labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, labels[k], want)
		}
	}
	if hc := strings.Join(inspect[0].Config.Healthcheck.Test, " "); hc != "CMD /usr/local/bin/presenced -healthcheck" {
		t.Errorf("HEALTHCHECK %q", hc)
	}
	if v := run(t, ctx, "docker", "run", "--rm", image, "-version"); !strings.HasPrefix(v, "presenced ") || !strings.Contains(v, "(revision abc123") {
		t.Errorf("presenced -version in the image: %q", v)
	}

	// The CA bundle is there, and the binary is static and stripped (a scratch image has no
	// shell: copy them out).
	id := strings.TrimSpace(run(t, ctx, "docker", "create", image))
	defer exec.Command("docker", "rm", "-f", id).Run()
	inImage := filepath.Join(t.TempDir(), "presenced")
	run(t, ctx, "docker", "cp", id+":/usr/local/bin/presenced", inImage)
	checkStripped(t, inImage)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	run(t, ctx, "docker", "cp", id+":/etc/ssl/certs/ca-certificates.crt", ca)
	if b, err := os.ReadFile(ca); err != nil || bytes.Count(b, []byte("BEGIN CERTIFICATE")) < 50 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt in the image: %v, %d certificates", err, bytes.Count(b, []byte("BEGIN CERTIFICATE")))
	}

	// Running (no Asterisk to reach: alive but not ready), the HEALTHCHECK reports it healthy.
	cid := strings.TrimSpace(run(t, ctx, "docker", "run", "-d", "--health-interval=1s", "--health-start-period=0s",
		"-e", "PRESENCED_ASTERISK_AMI_SECRET=x", "-e", "PRESENCED_ASTERISK_ARI_PASSWORD=x", image))
	defer exec.Command("docker", "rm", "-f", cid).Run()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status := strings.TrimSpace(run(t, ctx, "docker", "inspect", "-f", "{{.State.Health.Status}}", cid))
		if status == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", "--tail", "20", cid).CombinedOutput()
			t.Fatalf("the container's health is %q after 30 s; its log:\n%s", status, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkStripped fails unless the ELF binary at path is static (no interpreter, no dynamic
// section) and stripped: no symbol table, no DWARF.
func checkStripped(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || sec.Name == ".interp" || sec.Name == ".dynamic" ||
			strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("%s in the image has a %s section: not a static, stripped binary", filepath.Base(path), sec.Name)
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s in the image asks for a dynamic loader", filepath.Base(path))
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the image's presenced: %d bytes, %d sections", st.Size(), len(f.Sections))
}
