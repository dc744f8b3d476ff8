package main

import (
	"os/exec"
	"strings"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
)

// memcachedVersion returns the output of "memcached -V".
func memcachedVersion(bin string) string {
	out, err := exec.Command(bin, "-V").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// serverOptions are the memcached servers the bench starts: bin ("" means
// memcached on PATH), 1 GB each (a 1 MB benchmark stores 16 MB per
// implementation, all on one server in the 1-server case, beside what the
// earlier benchmarks left), items up to 2 MB so that 1 MB values fit with
// their header, room for every connection the peers open.
func serverOptions(bin string) memcachetest.Options {
	return memcachetest.Options{Binary: bin, MemoryMB: 1024, MaxItemSize: "2m", Connections: 4096}
}

// startServers starts n memcached processes on free loopback ports, tied
// to the life of the bench (see memcachetest.StartTied). On error it stops
// the ones already started.
func startServers(opts memcachetest.Options, n int) ([]*memcachetest.Server, error) {
	var out []*memcachetest.Server
	for i := 0; i < n; i++ {
		s, err := memcachetest.Launch(opts)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func closeAll(servers []*memcachetest.Server) {
	for _, s := range servers {
		s.Close()
	}
}

// cpuProbe returns the CPU time used so far by this process and by the
// servers together; ok is false where that is not measured.
type cpuProbe func() (self, servers time.Duration, ok bool)

func newCPUProbe(servers []*memcachetest.Server) cpuProbe {
	return func() (time.Duration, time.Duration, bool) {
		self, ok := selfCPU()
		if !ok {
			return 0, 0, false
		}
		var srv time.Duration
		for _, s := range servers {
			d, ok := processCPU(s.Pid())
			if !ok {
				return 0, 0, false
			}
			srv += d
		}
		return self, srv, true
	}
}
