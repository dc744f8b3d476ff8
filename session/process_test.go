package session_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// workerEnv names the memcached servers a worker process serves sessions
// from; set, it makes TestWorkerProcess run the worker.
const workerEnv = "MEMKIT_SESSION_WORKER_SERVERS"

// TestWorkerProcess is not a test: it is the worker that
// TestRevocationAcrossProcesses runs in separate processes (the test
// binary re-executed). It serves sessions on a loopback port, prints
// "listening ADDR", and exits when its standard input closes.
func TestWorkerProcess(t *testing.T) {
	servers := os.Getenv(workerEnv)
	if servers == "" {
		t.Skip("run by TestRevocationAcrossProcesses")
	}
	client, err := memclient.New(strings.Split(servers, ",")...)
	require.NoError(t, err)
	defer client.Close()
	mgr := &session.Manager{Store: session.NewMemcacheStore(client), Keys: testKeys,
		Token: session.TokenConfig{Enabled: true}, Cookie: session.CookieConfig{Insecure: true}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		require.NoError(t, s.Login(r.Context(), r.FormValue("user")))
		require.NoError(t, s.Set("pid", os.Getpid()))
		if r.FormValue("token") != "" {
			tok, err := s.Token()
			require.NoError(t, err)
			fmt.Fprint(w, tok)
		}
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		_, hasPID := s.Get(r.Context(), "pid")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": s.User(r.Context()), "handle": s.Handle(r.Context()), "data": hasPID})
	})
	mux.HandleFunc("POST /revoke-others", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, mgr.RevokeOtherSessions(r.Context(), session.FromContext(r.Context())))
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, mgr.RevokeSession(r.Context(), r.FormValue("user"), r.FormValue("handle")))
	})
	mux.HandleFunc("POST /revoke-all", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, mgr.RevokeUser(r.Context(), r.FormValue("user")))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: middleware.Session(mgr)(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// worker is one process running TestWorkerProcess.
type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

func startWorker(t *testing.T, servers string) *worker {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestWorkerProcess$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), workerEnv+"="+servers)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	w := &worker{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(t, err, "worker %d", cmd.Process.Pid)
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("worker %d did not exit", cmd.Process.Pid)
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- addr
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-lines:
		w.url = "http://" + addr
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not start")
	}
	return w
}

// client is a browser (a cookie) or an API client (a token).
type client struct {
	name          string
	cookie, token string
}

type me struct {
	User   string `json:"user"`
	Handle string `json:"handle"`
	Data   bool   `json:"data"`
}

func (c *client) do(t *testing.T, w *worker, method, path string) string {
	t.Helper()
	req, err := http.NewRequest(method, w.url+path, nil)
	require.NoError(t, err)
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: c.cookie})
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, body)
	for _, ck := range resp.Cookies() {
		if ck.Name == session.DefaultCookieName {
			c.cookie = ck.Value
		}
	}
	if c.token != "" {
		assert.Empty(t, resp.Cookies(), "no cookie for a token request")
	}
	return string(body)
}

func (c *client) me(t *testing.T, w *worker) me {
	t.Helper()
	var m me
	require.NoError(t, json.Unmarshal([]byte(c.do(t, w, "GET", "/me")), &m))
	return m
}

// TestRevocationAcrossProcesses runs three worker processes (this test
// binary, re-executed) sharing two memcached servers, and proves that a
// revoked session, cookie or token, is empty on its next request in every
// process, while the sessions kept stay valid in every process.
func TestRevocationAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	servers := srvs[0].Addr + "," + srvs[1].Addr
	workers := []*worker{startWorker(t, servers), startWorker(t, servers), startWorker(t, servers)}

	// Each device logs in through a different process.
	phone, laptop, api := &client{name: "phone"}, &client{name: "laptop"}, &client{name: "api"}
	phone.do(t, workers[0], "POST", "/login?user=ann")
	laptop.do(t, workers[1], "POST", "/login?user=ann")
	api.token = api.do(t, workers[2], "POST", "/login?user=ann&token=1")
	require.NotEmpty(t, api.token)
	bob := &client{name: "bob"}
	bob.do(t, workers[1], "POST", "/login?user=bob")

	signedIn := func(c *client, want bool, msg string) {
		t.Helper()
		for i, w := range workers {
			m := c.me(t, w)
			if want {
				assert.Equal(t, me{User: m.User, Handle: m.Handle, Data: true}, m, "%s: %s in process %d", msg, c.name, i)
				assert.NotEmpty(t, m.User, "%s: %s in process %d", msg, c.name, i)
			} else {
				assert.Equal(t, me{}, m, "%s: %s is empty in process %d", msg, c.name, i)
			}
		}
	}
	for _, c := range []*client{phone, laptop, api, bob} {
		signedIn(c, true, "after login")
	}

	// Everywhere but here, from the laptop through process 0.
	laptop.do(t, workers[0], "POST", "/revoke-others")
	signedIn(phone, false, "after revoke-others")
	signedIn(api, false, "after revoke-others")
	signedIn(laptop, true, "the current session is kept")

	// One by handle: a new login on process 2, revoked from process 1.
	desk := &client{name: "desk"}
	desk.do(t, workers[2], "POST", "/login?user=ann")
	handle := desk.me(t, workers[0]).Handle
	require.NotEmpty(t, handle)
	laptop.do(t, workers[1], "POST", "/revoke?user=ann&handle="+handle)
	signedIn(desk, false, "after revoking its handle")
	signedIn(laptop, true, "the others stay")

	// Everywhere, from process 2.
	api2 := &client{name: "api2"}
	api2.token = api2.do(t, workers[1], "POST", "/login?user=ann&token=1")
	signedIn(api2, true, "a new token")
	laptop.do(t, workers[2], "POST", "/revoke-all?user=ann")
	signedIn(laptop, false, "after logout everywhere")
	signedIn(api2, false, "after logout everywhere")
	signedIn(bob, true, "another user is untouched")
}
