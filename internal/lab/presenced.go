package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LabConfig is the configuration `make up` runs presenced with (users alice, bob and carol
// on the lab's extensions 1001-1003, their tokens, a few profiles, alice's calendar).
func LabConfig() string { return filepath.Join(RepoRoot(), "deploy", "presenced.lab.yaml") }

// composeAsteriskHTTP is the lab Asterisk's HTTP server as presenced reaches it inside `make
// up`'s network (deploy/compose.yaml): the lab configuration's calendar feed is there.
const composeAsteriskHTTP = "http://asterisk:8088/"

// hostConfig returns config itself, or, when it names the lab Asterisk's HTTP server by its
// name in `make up`'s network, a copy in dir naming it by its address on this host instead
// (the configuration is the same otherwise).
func (e *Env) hostConfig(config, dir string) (string, error) {
	b, err := os.ReadFile(config)
	if err != nil {
		return "", fmt.Errorf("lab: read the configuration: %w", err)
	}
	if !bytes.Contains(b, []byte(composeAsteriskHTTP)) {
		return config, nil
	}
	if e.HTTPAddr == "" {
		return "", fmt.Errorf("lab: %s names the lab Asterisk's HTTP server: StartPresenced needs the lab's Asterisk", config)
	}
	out := filepath.Join(dir, filepath.Base(config))
	b = bytes.ReplaceAll(b, []byte(composeAsteriskHTTP), []byte("http://"+e.HTTPAddr+"/"))
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return "", fmt.Errorf("lab: write the configuration: %w", err)
	}
	return out, nil
}

// Presenced is a presenced binary running against the lab, as `make up` runs it.
type Presenced struct {
	// URL is its HTTP address, e.g. http://127.0.0.1:39123.
	URL string

	cmd  *exec.Cmd
	dir  string // the configuration's copy, if any
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// BuildPresenced builds cmd/presenced into dir and returns the binary's path.
func BuildPresenced(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "presenced")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/presenced")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/presenced: %w\n%s", err, out)
	}
	return bin, nil
}

// StartPresenced runs the presenced binary bin with the configuration file config against
// the lab's Asterisk and Redis (which e must have started), listening on a free port of
// 127.0.0.1, and waits until /readyz answers 200. environ adds PRESENCED_* variables. Stop
// ends it. A configuration naming the lab Asterisk's HTTP server as `make up` names it
// (http://asterisk:8088/, the lab configuration's calendar feed) runs as a copy naming it by
// its address here.
func (e *Env) StartPresenced(ctx context.Context, bin, config, instance string, environ ...string) (*Presenced, error) {
	if e.AMIAddr == "" || e.RedisURL == "" {
		return nil, fmt.Errorf("lab: StartPresenced needs the lab's Asterisk and Redis")
	}
	dir, err := os.MkdirTemp("", "presenced-lab-config")
	if err != nil {
		return nil, err
	}
	if config, err = e.hostConfig(config, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Presenced{done: make(chan struct{}), dir: dir}
	p.cmd = exec.Command(bin, "-config", config)
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"PRESENCED_ASTERISK_AMI_ADDRESS=" + e.AMIAddr,
		"PRESENCED_ASTERISK_AMI_USERNAME=" + e.AMIUser,
		"PRESENCED_ASTERISK_AMI_SECRET=" + e.AMISecret,
		"PRESENCED_ASTERISK_ARI_URL=" + e.ARIURL,
		"PRESENCED_ASTERISK_ARI_USERNAME=" + e.ARIUser,
		"PRESENCED_ASTERISK_ARI_PASSWORD=" + e.ARIPassword,
		"PRESENCED_REDIS_URL=" + e.RedisURL,
		"PRESENCED_INSTANCE_ID=" + instance,
		"PRESENCED_HTTP_LISTEN=127.0.0.1:0",
		"PRESENCED_LOG_FORMAT=json",
	}, environ...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lab: start presenced: %w", err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.log.Write(line)
			p.log.WriteByte('\n')
			p.mu.Unlock()
			var l struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "presenced starting" && l.HTTP != "" {
				select {
				case addr <- l.HTTP:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.cmd.Wait()
	}()
	fail := func(err error) (*Presenced, error) {
		p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, lastLines(p.Log(), 30))
	}
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.done:
		return fail(fmt.Errorf("lab: presenced exited before it listened"))
	case <-ctx.Done():
		return fail(fmt.Errorf("lab: presenced did not listen: %w", ctx.Err()))
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return fail(fmt.Errorf("lab: presenced exited before it was ready"))
		case <-ctx.Done():
			return fail(fmt.Errorf("lab: presenced not ready: %w", ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Log is what presenced has logged so far (JSON lines).
func (p *Presenced) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// LogLines are the logged lines whose message contains msg.
func (p *Presenced) LogLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, msg) {
			out = append(out, l)
		}
	}
	return out
}

// PID is the process id of the running presenced (to read its memory from /proc).
func (p *Presenced) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for presenced to exit (SIGKILL after 15 s).
func (p *Presenced) Stop() {
	defer os.RemoveAll(p.dir)
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
