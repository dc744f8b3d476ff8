package objcache_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// systemPython has Debian's python3-memcache; the python3 first on PATH
// may be a build without it.
const systemPython = "/usr/bin/python3"

func requirePythonMemcache(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import memcache").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("python-memcached unavailable (%v: %s); run `make deps` (apt-get install python3-memcache)", err, out)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func runPython(t *testing.T, addr, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "-c", script, addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	return strings.TrimSpace(string(out))
}

// SetMulti/GetMulti with a key prefix work the python-memcached way, in
// both directions, for the values python-memcached stores natively
// (str and int).
func TestPythonKeyPrefixInterop(t *testing.T) {
	leakcheck.Check(t)
	requirePythonMemcache(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: "app:"})

	require.NoError(t, objcache.SetMulti(ctx, c, "user:", map[string]string{"1": "ada", "2": "grace"}, time.Minute))
	require.NoError(t, objcache.SetMulti(ctx, c, "stock:", map[string]int{"lamp": 88, "chair": 7}, time.Minute))
	got := runPython(t, srv.Addr, `
import sys, json, memcache
mc = memcache.Client([sys.argv[1]])
users = mc.get_multi(["1", "2", "3"], key_prefix="app:user:")
stock = mc.get_multi(["lamp", "chair"], key_prefix="app:stock:")
mc.set_multi({"a": "from python", "b": 42}, key_prefix="app:py:")
print(json.dumps([users, stock], sort_keys=True))
`)
	assert.JSONEq(t, `[{"1": "ada", "2": "grace"}, {"chair": 7, "lamp": 88}]`, got)

	strs, err := objcache.GetMulti[string](ctx, c, "py:", []string{"a"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "from python"}, strs)
	ints, err := objcache.GetMulti[int](ctx, c, "py:", []string{"b"})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"b": 42}, ints)

	// The ticket counter: Go sells with Update, Python reads an int.
	require.NoError(t, c.Set(ctx, "tickets", 88, 0))
	_, err = objcache.Update(ctx, c, "tickets", 0, func(n int, _ bool) (int, error) { return n - 1, nil })
	require.NoError(t, err)
	assert.Equal(t, "87", runPython(t, srv.Addr, `
import sys, memcache
print(memcache.Client([sys.argv[1]]).get("app:tickets"))
`))
}
