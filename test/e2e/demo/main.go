// Command demo tells the seed's story for a person (`make demo`): it builds
// the pinned tools that are missing, starts a local control plane with real
// controllers and kwok nodes, runs canary-tagger as a local process, narrates
// the scenario shared with the e2e test, and exits 0 only if every check
// passed.
//
//	make demo            run it, then stop everything
//	make demo KEEP=1     leave the cluster up afterwards (state in bin/demo)
//	make demo-down       stop a cluster left up by KEEP=1
//
// Flags: -keep (or KEEP=1), -down, -skip-tools.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canary-tagger/canary-tagger/test/e2e/cluster"
	"github.com/canary-tagger/canary-tagger/test/e2e/scenario"
)

func main() {
	keep := flag.Bool("keep", os.Getenv("KEEP") != "" && os.Getenv("KEEP") != "0", "leave the cluster up (make demo KEEP=1); stop it with -down")
	down := flag.Bool("down", false, "stop a cluster left up by -keep and remove its state")
	skipTools := flag.Bool("skip-tools", false, "do not run hack/tools.sh e2e first")
	flag.Parse()

	repo, _, _, err := cluster.Paths()
	if err != nil {
		fatal(err)
	}
	state := stateDir{filepath.Join(repo, "bin", "demo")}
	if *down {
		n, err := state.down(os.Stdout)
		if err != nil {
			fatal(err)
		}
		if n == 0 {
			fmt.Println("demo-down: no demo cluster was running")
		}
		return
	}
	os.Exit(run(repo, state, *keep, *skipTools))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

func run(repo string, state stateDir, keep, skipTools bool) int {
	// Ctrl-C (or SIGTERM) cancels whatever is running; everything is then
	// stopped below, KEEP or not.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	total := time.Now()
	p := &printer{w: os.Stdout, repo: repo}

	p.banner("canary-tagger demo: the seed's story on a local control plane (no Docker, no cloud)")
	if n, err := state.down(io.Discard); err != nil {
		p.fail("stopping the previous demo cluster: %v", err)
		return 1
	} else if n > 0 {
		p.say("Stopped the cluster a previous `make demo KEEP=1` left up (%d processes).", n)
	}
	if err := state.reset(); err != nil {
		p.fail("%v", err)
		return 1
	}
	// envtest's and the harness's temporary directories (certificates, etcd
	// data) go under bin/demo/tmp, so `make demo-down` finds them.
	if err := os.Setenv("TMPDIR", state.path("tmp")); err != nil {
		p.fail("%v", err)
		return 1
	}

	if !skipTools {
		p.section("Tools (built from pinned modules, cached in bin/)")
		if err := buildTools(ctx, repo, p); err != nil {
			p.fail("%v", err)
			return 1
		}
	}

	p.section("Starting the cluster")
	c, err := cluster.Up(ctx, cluster.Options{
		Binary: filepath.Join(repo, "bin", "canary-tagger"),
		LogDir: state.path("logs"),
		Detach: keep,
		Logf:   p.say,
	})
	if err != nil {
		if ctx.Err() != nil {
			p.section("Interrupted (everything started so far is stopped)")
			return 130
		}
		p.fail("%v", err)
		p.say("Logs: %s", rel(repo, state.path("logs")))
		return 1
	}
	teardown := func() {
		p.section("Stopping the cluster")
		start := time.Now()
		if err := c.Down(); err != nil {
			p.say("stopping: %v", err)
		}
		p.say("all processes stopped (%s); logs kept in %s", time.Since(start).Round(100*time.Millisecond), rel(repo, state.path("logs")))
	}

	s, err := scenario.New(c.ScenarioEnv())
	if err != nil {
		p.fail("%v", err)
		teardown()
		return 1
	}
	// The Datadog stand-in of the analysis steps lives in this process.
	defer s.Close()
	steps := s.Steps()
	p.total = len(steps)
	var failed error
	for _, st := range steps {
		p.Step(st.N, st.Title)
		start := time.Now()
		if err := st.Run(ctx, p); err != nil {
			failed = fmt.Errorf("step %d: %w", st.N, err)
			break
		}
		p.say("(step %d: %s)", st.N, time.Since(start).Round(100*time.Millisecond))
	}

	if ctx.Err() != nil {
		p.section("Interrupted")
		teardown()
		return 130
	}
	if failed != nil {
		p.fail("%v", failed)
		for _, proc := range c.Processes() {
			p.show("last lines of "+rel(repo, proc.LogPath), proc.Tail(10))
		}
	} else {
		p.section(fmt.Sprintf("All %d checks passed in %s", p.checks, time.Since(total).Round(time.Second)))
	}

	if keep {
		if err := state.save(c); err != nil {
			p.fail("saving the demo state: %v", err)
			teardown()
			return 1
		}
		p.section("The cluster is still up (KEEP=1)")
		p.block(strings.Join([]string{
			"export KUBECONFIG=$PWD/" + rel(repo, state.path("kubeconfig")),
			"export PATH=$PWD/bin/e2e:$PWD/bin/k8s:$PATH   # kubectl and the kubectl-argo-rollouts plugin",
			"kubectl argo rollouts get rollout demo",
			"kubectl get pods --show-labels",
			"kubectl get pods -n datadog -o wide",
			"kubectl argo rollouts set image demo demo=argoproj/demo:green   # and watch role=canary appear",
		}, "\n"))
		p.say("Logs: %s. Stop it with: make demo-down", rel(repo, state.path("logs")))
	} else {
		teardown()
	}
	if failed != nil {
		return 1
	}
	return 0
}

// buildTools runs hack/tools.sh e2e, which builds only what is missing or
// out of date, and streams its progress.
func buildTools(ctx context.Context, repo string, p *printer) error {
	missing, err := cluster.MissingTools()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, m := range missing {
			names[i] = filepath.Base(m)
		}
		p.say("Missing: %s.", strings.Join(names, ", "))
		p.say("Building from source (Go module proxy only). Expect ≈15 minutes on a cold 2-core machine; later runs reuse bin/.")
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "hack", "tools.sh"), "e2e")
	cmd.Dir = repo
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		p.say("%s", sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("hack/tools.sh e2e: %w", err)
	}
	p.say("(tools: %s)", time.Since(start).Round(time.Second))
	return nil
}

// ---- output ----

// printer is the demo's narrator: plain text, indented, pasteable.
type printer struct {
	w      io.Writer
	repo   string
	total  int
	checks int
}

func (p *printer) clean(s string) string {
	return strings.ReplaceAll(s, p.repo+string(os.PathSeparator), "")
}

func (p *printer) banner(s string) {
	fmt.Fprintf(p.w, "%s\n%s\n", s, strings.Repeat("=", len([]rune(s))))
}
func (p *printer) section(s string) {
	fmt.Fprintf(p.w, "\n== %s\n", s)
}
func (p *printer) say(f string, a ...any) { fmt.Fprintf(p.w, "   %s\n", p.clean(fmt.Sprintf(f, a...))) }
func (p *printer) fail(f string, a ...any) {
	fmt.Fprintf(p.w, "\n✘ FAILED: %s\n", strings.ReplaceAll(p.clean(fmt.Sprintf(f, a...)), "\n", "\n   "))
}
func (p *printer) block(body string) {
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		fmt.Fprintf(p.w, "     %s\n", l)
	}
}
func (p *printer) show(title, body string) {
	fmt.Fprintf(p.w, "   %s\n", p.clean(title))
	p.block(p.clean(body))
}

// scenario.Narrator
func (p *printer) Step(n int, title string) {
	fmt.Fprintf(p.w, "\n== Step %d/%d: %s\n", n, p.total, title)
}
func (p *printer) Say(f string, a ...any)  { p.say(f, a...) }
func (p *printer) Show(title, body string) { p.show(title, body) }
func (p *printer) Check(f string, a ...any) {
	p.checks++
	fmt.Fprintf(p.w, "   ✔ %s\n", p.clean(fmt.Sprintf(f, a...)))
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// ---- KEEP=1 state ----

// stateDir is bin/demo: logs/, tmp/ (envtest's directories), and, while a
// KEEP=1 cluster is up, kubeconfig and pids.
type stateDir struct{ dir string }

func (s stateDir) path(name string) string { return filepath.Join(s.dir, name) }

// reset removes what a previous run left (its processes must be gone).
func (s stateDir) reset() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return err
	}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// save records every child process of this one (envtest's etcd and
// kube-apiserver, the controllers, canary-tagger) with its start time, so
// that down never signals a recycled pid, and copies the kubeconfig.
func (s stateDir) save(c *cluster.Cluster) error {
	kc, err := os.ReadFile(c.Env.Kubeconfig())
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.path("kubeconfig"), kc, 0o600); err != nil {
		return err
	}
	kids, err := children(os.Getpid())
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# pid starttime name: processes of the demo cluster (make demo-down stops them)\n")
	for _, k := range kids {
		fmt.Fprintf(&b, "%d %s %s\n", k.pid, k.start, k.comm)
	}
	return os.WriteFile(s.path("pids"), []byte(b.String()), 0o644)
}

// down stops the processes recorded by save, SIGTERM to each process group
// and SIGKILL after 15 s, then removes the state directory. It returns how
// many processes were still running.
func (s stateDir) down(w io.Writer) (int, error) {
	data, err := os.ReadFile(s.path("pids"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var live []proc
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || strings.HasPrefix(l, "#") {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		if cur, ok := stat(pid); ok && cur.start == f[1] && cur.state != "Z" {
			live = append(live, cur)
		}
	}
	if len(live) > 0 {
		names := make([]string, len(live))
		for i, p := range live {
			names[i] = fmt.Sprintf("%s (%d)", p.comm, p.pid)
		}
		fmt.Fprintf(w, "demo-down: stopping %s\n", strings.Join(names, ", "))
	}
	// Clients first, then the apiserver, then etcd: an apiserver whose etcd
	// is gone, or that still serves watches, takes long to shut down.
	var clients, apiserver, etcd []proc
	for _, p := range live {
		switch p.comm {
		case "kube-apiserver":
			apiserver = append(apiserver, p)
		case "etcd":
			etcd = append(etcd, p)
		default:
			clients = append(clients, p)
		}
	}
	for _, group := range [][]proc{clients, apiserver, etcd} {
		for _, p := range terminate(group, 15*time.Second) {
			fmt.Fprintf(w, "demo-down: %s (%d) ignored SIGTERM for 15s: killed\n", p.comm, p.pid)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return len(live), err
	}
	if len(live) > 0 {
		fmt.Fprintf(w, "demo-down: done, %s removed\n", s.dir)
	}
	return len(live), nil
}

// terminate sends SIGTERM to each process's group (each is a group leader:
// started with Setpgid) and SIGKILL to those still running after grace,
// which it returns.
func terminate(ps []proc, grace time.Duration) []proc {
	signal := func(ps []proc, sig syscall.Signal) {
		for _, p := range ps {
			if pgid, err := syscall.Getpgid(p.pid); err == nil && pgid == p.pid {
				_ = syscall.Kill(-p.pid, sig)
			} else {
				_ = syscall.Kill(p.pid, sig)
			}
		}
	}
	alive := func() []proc {
		var out []proc
		for _, p := range ps {
			// Orphans belong to init, which may leave them as zombies: those are gone.
			if cur, ok := stat(p.pid); ok && cur.start == p.start && cur.state != "Z" {
				out = append(out, p)
			}
		}
		return out
	}
	signal(ps, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for len(alive()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // not our children: nothing to wait on but /proc
	}
	left := alive()
	signal(left, syscall.SIGKILL)
	return left
}

type proc struct {
	pid         int
	start, comm string
	state       string
	ppid        int
}

// stat reads /proc/PID/stat: state, ppid and start time (field 22).
func stat(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return proc{}, false
	}
	f := strings.Fields(s[rp+1:])
	if len(f) < 20 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	return proc{pid: pid, comm: s[lp+1 : rp], state: f[0], ppid: ppid, start: f[19]}, true
}

func children(parent int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := stat(pid); ok && p.ppid == parent && p.state != "Z" {
			out = append(out, p)
		}
	}
	return out, nil
}
