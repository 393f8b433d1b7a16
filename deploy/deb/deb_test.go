// Package deb_test builds the presenced .deb (build.sh, with nfpm) and installs it with
// `apt install ./presenced_*.deb` in a clean Debian container made from the lab's image
// (testdata/lab/build.sh: Debian's packages, no registry), then checks what an admin gets: the
// system user, the configuration's permissions, the files under /usr/share/presenced, the man
// page, a unit that `systemd-analyze verify` accepts and `systemd-analyze security` rates at
// most 2.0, and presenced, run as the service's user on the installed configuration, becoming
// ready against the lab Asterisk and Redis in the container. Purging removes it all.
//
// Booting systemd in the container needs a cgroup v2 Docker host (systemd 256+): the test
// tries, in a privileged copy of the installed machine, and there starts, reloads and stops
// the unit with systemctl; where systemd does not boot (a cgroup v1 host, as this project's
// machines), it logs why, and presenced is run as the unit would run it (the unit itself is
// checked with systemd-analyze either way).
package deb_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// run runs a command in the repository's root and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = "../.."
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// container is a container this test started, removed at its end.
type container struct {
	t  *testing.T
	id string
}

// exec runs a bash script in the container and returns its output; it fails the test when
// the script fails.
func (c *container) exec(script string) string {
	c.t.Helper()
	out, err := c.try(script)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", script, err, out)
	}
	return out
}

func (c *container) try(script string) (string, error) {
	out, err := exec.Command("docker", "exec", c.id, "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	return string(out), err
}

// labImageID builds (when missing) the lab image and returns its ID. Other test packages, and
// other checkouts on the machine, build lab images too, and testdata/lab/build.sh drops the tags
// of builds other than the newest, which removes an image no tag or container holds: a tag may
// be gone by the time it is inspected, so it tries again, and it holds the image with a tag of
// this test's own until the test ends (the test image is built on it).
func labImageID(t *testing.T) string {
	t.Helper()
	var err error
	hold := fmt.Sprintf("presenced-deb-lab:held-%d", os.Getpid())
	for range 3 {
		ref := lastLine(run(t, "bash", "testdata/lab/build.sh"))
		if err = exec.Command("docker", "tag", ref, hold).Run(); err != nil {
			continue
		}
		var out []byte
		if out, err = exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", hold).Output(); err == nil {
			t.Cleanup(func() { exec.Command("docker", "rmi", hold).Run() })
			return strings.TrimSpace(string(out))
		}
	}
	t.Fatalf("the lab image: %v", err)
	return ""
}

// testImage builds (when missing) the Debian machine of testdata/Dockerfile on the lab image
// (by its ID).
func testImage(t *testing.T, id string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range []string{"testdata/Dockerfile", "testdata/lab-asterisk.service"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	h.Write([]byte(id))
	image := fmt.Sprintf("presenced-deb-test:%x", h.Sum(nil)[:6])
	if exec.Command("docker", "image", "inspect", image).Run() != nil {
		run(t, "docker", "build", "-q", "--build-arg", "BASE="+id, "-f", "deploy/deb/testdata/Dockerfile", "-t", image, ".")
	}
	return image
}

var exposure = regexp.MustCompile(`Overall exposure level for presenced\.service: ([0-9.]+) `)

func TestDebInstallsOnCleanDebian(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker is not installed: the package test installs the .deb in a container")
	}
	labImage := labImageID(t)
	deb := lastLine(run(t, "bash", "deploy/deb/build.sh"))
	if !strings.HasPrefix(filepath.Base(deb), "presenced_") || !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("build.sh made %q, want dist/presenced_<version>_<arch>.deb", deb)
	}
	image := testImage(t, labImage)

	// The container idles; the test runs what it checks inside. It is removed at the end.
	id := strings.TrimSpace(run(t, "docker", "run", "-d", "--init", "--tmpfs", "/run", "--tmpfs", "/tmp", image, "sleep", "infinity"))
	c := &container{t: t, id: id}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	run(t, "docker", "cp", deb, id+":/root/"+filepath.Base(deb))

	// As the README says: apt install ./presenced_*.deb
	out := c.exec("cd /root && DEBIAN_FRONTEND=noninteractive apt install -y ./presenced_*.deb 2>&1")
	t.Logf("apt install:\n%s", out)
	if !strings.Contains(out, "systemctl enable --now presenced") {
		t.Errorf("the first install did not tell the admin what to do next:\n%s", out)
	}

	// The system user and the permissions.
	pw := strings.Split(strings.TrimSpace(c.exec("getent passwd presenced")), ":")
	if len(pw) != 7 {
		t.Fatalf("getent passwd presenced: %q", pw)
	}
	if uid, _ := strconv.Atoi(pw[2]); uid == 0 || uid >= 1000 || pw[5] != "/var/lib/presenced" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("user presenced: %q, want a system user (uid below 1000) with home /var/lib/presenced and no shell", pw)
	}
	perms := c.exec("stat -c '%n %a %U %G' /etc/presenced /etc/presenced/presenced.yaml /var/lib/presenced /usr/bin/presenced " +
		"/usr/lib/systemd/system/presenced.service /usr/share/presenced/extensions_presenced.conf " +
		"/usr/share/presenced/manager_presenced.conf /usr/share/presenced/prometheus/alerts.yml " +
		"/usr/share/presenced/grafana/presenced.json /usr/share/doc/presenced/copyright")
	for _, want := range []string{
		"/etc/presenced 750 root presenced",
		"/etc/presenced/presenced.yaml 640 root presenced",
		"/var/lib/presenced 750 presenced presenced",
		"/usr/bin/presenced 755 root root",
		"/usr/lib/systemd/system/presenced.service 644 root root",
		"/usr/share/presenced/extensions_presenced.conf 644 root root",
		"/usr/share/presenced/manager_presenced.conf 644 root root",
	} {
		if !strings.Contains(perms, want+"\n") {
			t.Errorf("installed files: want %q, have:\n%s", want, perms)
		}
	}
	if strings.Contains(c.exec("cat /var/lib/dpkg/info/presenced.conffiles"), "/etc/presenced/presenced.yaml") == false {
		t.Error("/etc/presenced/presenced.yaml is not a conffile: an upgrade would overwrite the admin's edits")
	}
	if man := strings.TrimSpace(c.exec("man -w presenced")); man != "/usr/share/man/man8/presenced.8.gz" {
		t.Errorf("man -w presenced = %q", man)
	}
	if v := c.exec("presenced -version"); !strings.HasPrefix(v, "presenced ") || !strings.Contains(v, "revision ") {
		t.Errorf("presenced -version: %q", v)
	}
	if _, err := os.Stat("../../cmd/presencectl"); err == nil {
		c.exec("test -x /usr/bin/presencectl && presencectl --help >/dev/null")
		if man := strings.TrimSpace(c.exec("man -w presencectl")); man != "/usr/share/man/man1/presencectl.1.gz" {
			t.Errorf("man -w presencectl = %q", man)
		}
		// The page is generated from the CLI: it has the commands and the exit codes.
		page := c.exec("MANWIDTH=100 man presencectl 2>/dev/null")
		for _, want := range []string{"presencectl switch", "presencectl who", "presencectl reconcile", "--json", "Exit codes"} {
			if !strings.Contains(page, want) {
				t.Errorf("presencectl(1) lacks %q:\n%s", want, page)
			}
		}
	}

	// The unit, as systemd reads it.
	if out, err := c.try("systemd-analyze verify /usr/lib/systemd/system/presenced.service 2>&1"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify presenced.service: %v\n%s", err, out)
	}
	// The credentials drop-in the unit's header documents, as systemctl edit would write it.
	var dropIn []string
	for _, l := range strings.Split(c.exec("cat /usr/lib/systemd/system/presenced.service"), "\n") {
		if l, ok := strings.CutPrefix(l, "#     "); ok && (strings.HasPrefix(l, "[Service]") || strings.HasPrefix(l, "LoadCredential=") ||
			strings.HasPrefix(l, "Environment=PRESENCED_")) {
			dropIn = append(dropIn, l)
		}
	}
	if len(dropIn) < 5 || dropIn[0] != "[Service]" {
		t.Fatalf("the unit's header documents no credentials drop-in: %q", dropIn)
	}
	c.exec("mkdir -p /etc/systemd/system/presenced.service.d && cat > /etc/systemd/system/presenced.service.d/override.conf <<'EOF'\n" +
		strings.Join(dropIn, "\n") + "\nEOF")
	if out, err := c.try("systemd-analyze verify presenced.service 2>&1"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify presenced.service with the documented credentials drop-in %q: %v\n%s", dropIn, err, out)
	}
	sec := c.exec("systemd-analyze security --no-pager --offline=true /usr/lib/systemd/system/presenced.service 2>&1")
	m := exposure.FindStringSubmatch(sec)
	if m == nil {
		t.Fatalf("systemd-analyze security:\n%s", sec)
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 2.0 {
		t.Errorf("systemd-analyze security rates the installed unit %v, above 2.0:\n%s", score, sec)
	}

	// presenced as the unit runs it: the service's user, the installed configuration (its
	// secrets in the files it names), the lab Asterisk and Redis in the container.
	c.exec(`printf presenced-secret > /etc/presenced/ami-secret && printf presenced-secret > /etc/presenced/ari-password &&
		chown root:presenced /etc/presenced/ami-secret /etc/presenced/ari-password &&
		chmod 0640 /etc/presenced/ami-secret /etc/presenced/ari-password`)
	if out, err := c.try("runuser -u nobody -- cat /etc/presenced/presenced.yaml 2>&1"); err == nil {
		t.Errorf("another user can read the configuration:\n%s", out)
	}
	c.exec("runuser -u presenced -- presenced -check-config -config /etc/presenced/presenced.yaml")

	// Under systemd where the Docker host lets it boot in a container; else (a cgroup v1 host:
	// systemd 256+ refuses it) as the unit would run it, below.
	if reason := underSystemd(t, id); reason != "" {
		t.Logf("systemd did not boot in a container here, so presenced is run as the unit would run it: %s", reason)
	}
	c.exec(`(asterisk -f -n -C /etc/asterisk-lab/asterisk.conf >/tmp/asterisk.log 2>&1 &) &&
		(redis-server --bind 127.0.0.1 --save '' >/tmp/redis.log 2>&1 &) &&
		(cd /var/lib/presenced && runuser -u presenced -- presenced -config /etc/presenced/presenced.yaml -log-format json >/tmp/presenced.log 2>&1 &)`)
	readyz := `exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && cat <&3`
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := c.try(readyz)
		if err == nil && strings.HasPrefix(out, "HTTP/1.0 200") {
			t.Logf("/readyz of the installed presenced:\n%s", out)
			break
		}
		if time.Now().After(deadline) {
			log, _ := c.try("tail -30 /tmp/presenced.log")
			t.Fatalf("the installed presenced is not ready after 90 s: %v\n%s\nits log:\n%s", err, out, log)
		}
		time.Sleep(time.Second)
	}
	c.exec("presenced -healthcheck")
	// The image has no procps: its processes are read from /proc.
	pid := "$(grep -lx presenced /proc/[0-9]*/comm | head -1 | cut -d/ -f3)"
	if owner := strings.TrimSpace(c.exec("stat -c %U /proc/" + pid)); owner != "presenced" {
		t.Errorf("presenced runs as %q", owner)
	}
	c.exec("p=" + pid + "; kill -TERM $p; for i in $(seq 75); do [ -e /proc/$p ] || exit 0; sleep 0.2; done; exit 1")

	// Purging leaves nothing behind.
	c.exec("DEBIAN_FRONTEND=noninteractive apt-get purge -y presenced >/dev/null 2>&1")
	if out, err := c.try("getent passwd presenced || ls -d /etc/presenced/presenced.yaml /usr/bin/presenced /var/lib/presenced 2>/dev/null"); err == nil {
		t.Errorf("after apt-get purge presenced: %s", out)
	}
}

// underSystemd boots systemd in a privileged container made of the installed machine (id,
// committed as an image) and starts presenced.service there: systemctl start returns once
// presenced said it is ready (Type=notify), /readyz answers 200, systemctl reload keeps it
// running, and systemctl stop stops it. It returns why systemd did not boot, or "" when the
// unit ran under it.
func underSystemd(t *testing.T, id string) string {
	t.Helper()
	cgroup, _ := exec.Command("docker", "info", "--format", "{{.CgroupVersion}}").Output()
	image := fmt.Sprintf("presenced-deb-boot:%d", time.Now().UnixNano())
	if out, err := exec.Command("docker", "commit", id, image).CombinedOutput(); err != nil {
		t.Fatalf("docker commit: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })
	args := []string{"run", "-d", "--privileged", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"}
	if strings.TrimSpace(string(cgroup)) == "2" {
		args = append(args, "--cgroupns=private")
	}
	out, err := exec.Command("docker", append(args, image, "/sbin/init")...).Output()
	boot := lastLine(string(out))
	if boot != "" {
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", boot).Run() })
	}
	if err != nil {
		why := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			why = strings.TrimSpace(string(ee.Stderr))
		} else if boot != "" {
			st, _ := exec.Command("docker", "inspect", "-f", "{{.State.Error}}", boot).Output()
			why += ": " + strings.TrimSpace(string(st))
		}
		return fmt.Sprintf("cgroup v%s host; docker run --privileged ... /sbin/init: %s", strings.TrimSpace(string(cgroup)), why)
	}
	c := &container{t: t, id: boot}
	var state string
	for deadline := time.Now().Add(90 * time.Second); ; {
		st, err := c.try("systemctl is-system-running 2>&1 || true")
		state = strings.TrimSpace(st)
		if err == nil && (state == "running" || state == "degraded") {
			break
		}
		if running, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", boot).Output(); strings.TrimSpace(string(running)) != "true" || time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", "--tail", "5", boot).CombinedOutput()
			return fmt.Sprintf("cgroup v%s host; system state %q; the container's last lines:\n%s", strings.TrimSpace(string(cgroup)), state, logs)
		}
		time.Sleep(time.Second)
	}
	t.Logf("systemd booted in the container (%s)", state)
	if out, err := c.try("systemctl start presenced 2>&1"); err != nil {
		log, _ := c.try("journalctl -u presenced --no-pager | tail -30")
		t.Fatalf("systemctl start presenced: %v\n%s\n%s", err, out, log)
	}
	readyz := `exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && cat <&3`
	if out := c.exec(readyz); !strings.HasPrefix(out, "HTTP/1.0 200") {
		t.Errorf("/readyz right after systemctl start (Type=notify: ready means ready): %s", out)
	}
	if owner := strings.TrimSpace(c.exec("stat -c %U /proc/$(systemctl show -p MainPID --value presenced)")); owner != "presenced" {
		t.Errorf("presenced runs as %q under systemd", owner)
	}
	c.exec("systemctl reload presenced")
	if active := strings.TrimSpace(c.exec("systemctl is-active presenced || true")); active != "active" {
		t.Errorf("after systemctl reload presenced is %q", active)
	}
	c.exec("journalctl -u presenced --no-pager | grep -q 'configuration reloaded'")
	c.exec("systemctl stop presenced")
	if active := strings.TrimSpace(c.exec("systemctl is-active presenced || true")); active != "inactive" {
		t.Errorf("after systemctl stop presenced is %q", active)
	}
	return ""
}
