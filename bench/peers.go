package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"sync"
	"time"

	qmemcache "github.com/QuangTung97/go-memcache/memcache"
	gmemcache "github.com/grafana/gomemcache/memcache"
	"github.com/memkit/memkit/memclient"
	rmemcache "github.com/rainycape/memcache"
)

// The Get peers beside bradfitz/gomemcache (clients.go). Each is set up as
// its documentation suggests for a busy client, and no worse than memkit:
//
//   - grafana/gomemcache, a fork of gomemcache: MaxIdleConns = goroutines
//     and Timeout 1 s, as gomemcache. Its Close stops its idle-connection
//     reaper but leaves the connections open, so the bench dials through
//     DialTimeout and closes what it dialled.
//   - rainycape/memcache (binary protocol, a 2015 fork of gomemcache):
//     SetMaxIdleConnsPerAddr(goroutines), SetTimeout(1 s).
//   - QuangTung97/go-memcache (meta protocol, pipelined, one server per
//     Client): as many connections per server as memkit may open
//     (-conns, default memclient.DefaultMaxConnsPerServer), one Client per
//     server chosen by the key's CRC-32 (what gomemcache's ServerList
//     does), and a Pipeline per Get as its README shows.

// grafanaSetup returns the setup of a grafana/gomemcache Get benchmark.
func grafanaSetup(goroutines, size, nkeys int) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		var mu sync.Mutex
		var dialled []net.Conn // every connection, closed by closeFn
		c := gmemcache.New(servers...)
		c.MaxIdleConns = goroutines
		c.Timeout = time.Second
		c.DialTimeout = func(network, address string, timeout time.Duration) (net.Conn, error) {
			nc, err := net.DialTimeout(network, address, timeout)
			if err == nil {
				mu.Lock()
				dialled = append(dialled, nc)
				mu.Unlock()
			}
			return nc, err
		}
		closeFn := func() {
			c.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, nc := range dialled {
				_ = nc.Close()
			}
		}
		keys := makeKeys(fmt.Sprintf("grafana:%d:%d:", len(servers), size), nkeys)
		val := value(size)
		for _, k := range keys {
			if err := c.Set(&gmemcache.Item{Key: k, Value: val}); err != nil {
				closeFn()
				return nil, nil, fmt.Errorf("storing %s: %w", k, err)
			}
		}
		return func(_ context.Context, w, i int) error {
			it, err := c.Get(keyFor(keys, w, i))
			if err != nil {
				return err
			}
			return checkLen(it.Value, size)
		}, closeFn, nil
	}
}

// rainycapeSetup returns the setup of a rainycape/memcache Get benchmark.
func rainycapeSetup(goroutines, size, nkeys int) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		c, err := rmemcache.New(servers...)
		if err != nil {
			return nil, nil, err
		}
		c.SetMaxIdleConnsPerAddr(goroutines)
		c.SetTimeout(time.Second)
		closeFn := func() { _ = c.Close() }
		keys := makeKeys(fmt.Sprintf("rainycape:%d:%d:", len(servers), size), nkeys)
		val := value(size)
		for _, k := range keys {
			if err := c.Set(&rmemcache.Item{Key: k, Value: val}); err != nil {
				closeFn()
				return nil, nil, fmt.Errorf("storing %s: %w", k, err)
			}
		}
		return func(_ context.Context, w, i int) error {
			it, err := c.Get(keyFor(keys, w, i))
			if err != nil {
				return err
			}
			return checkLen(it.Value, size)
		}, closeFn, nil
	}
}

// quangtung is QuangTung97/go-memcache over several servers: one Client
// (conns pipelined connections) per server, the server chosen by the
// key's CRC-32.
type quangtung []*qmemcache.Client

func newQuangtung(servers []string, conns int) (quangtung, error) {
	var q quangtung
	for _, a := range servers {
		c, err := qmemcache.New(a, conns)
		if err != nil {
			q.close()
			return nil, err
		}
		q = append(q, c)
	}
	return q, nil
}

func (q quangtung) close() {
	for _, c := range q {
		_ = c.Close()
	}
}

func (q quangtung) pick(key string) *qmemcache.Client {
	return q[crc32.ChecksumIEEE([]byte(key))%uint32(len(q))]
}

func (q quangtung) set(key string, val []byte) error {
	p := q.pick(key).Pipeline()
	defer p.Finish()
	resp, err := p.MSet(key, val, qmemcache.MSetOptions{})()
	if err != nil {
		return err
	}
	if resp.Type != qmemcache.MSetResponseTypeHD {
		return fmt.Errorf("not stored (%d)", resp.Type)
	}
	return nil
}

func (q quangtung) get(key string) ([]byte, error) {
	p := q.pick(key).Pipeline()
	defer p.Finish()
	resp, err := p.MGet(key, qmemcache.MGetOptions{})()
	if err != nil {
		return nil, err
	}
	if resp.Type != qmemcache.MGetResponseTypeVA {
		return nil, errors.New("cache miss")
	}
	return resp.Data, nil
}

// quangtungSetup returns the setup of a QuangTung97/go-memcache Get
// benchmark with conns connections per server (0: memclient's default
// MaxConnsPerServer).
func quangtungSetup(size, nkeys, conns int) setupFunc {
	if conns == 0 {
		conns = memclient.DefaultMaxConnsPerServer
	}
	return func(ctx context.Context, servers []string) (op, func(), error) {
		q, err := newQuangtung(servers, conns)
		if err != nil {
			return nil, nil, err
		}
		keys := makeKeys(fmt.Sprintf("quangtung:%d:%d:", len(servers), size), nkeys)
		val := value(size)
		for _, k := range keys {
			if err := q.set(k, val); err != nil {
				q.close()
				return nil, nil, fmt.Errorf("storing %s: %w", k, err)
			}
		}
		return func(_ context.Context, w, i int) error {
			v, err := q.get(keyFor(keys, w, i))
			if err != nil {
				return err
			}
			return checkLen(v, size)
		}, q.close, nil
	}
}
