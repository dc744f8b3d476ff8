package memclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"
)

// A dialAttempt is one connect shared by every caller that needs the
// slot's connection while it runs. It runs detached from any caller's
// context, bounded by Config.DialTimeout, so a caller that gives up does
// not fail it for the others, and its connection is kept for later calls.
type dialAttempt struct {
	done chan struct{} // closed when c or err is set
	c    *conn
	err  error
}

// dialSlot returns the slot's connection, starting a dial if it has none,
// and waits for it until ctx ends or deadline.
func (s *server) dialSlot(ctx context.Context, sl *slot, now int64, deadline time.Time, timer *time.Timer) (*conn, error) {
	sl.mu.Lock()
	if c := sl.c.Load(); c != nil && c.usable(now) {
		sl.mu.Unlock()
		return c, nil
	}
	a := sl.attempt
	if a == nil {
		a = &dialAttempt{done: make(chan struct{})}
		if !s.client.goBackground(func() { s.runDial(sl, a) }) {
			sl.mu.Unlock()
			return nil, ErrClosed
		}
		sl.attempt = a
	}
	sl.mu.Unlock()

	timer.Reset(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-a.done:
		if a.err != nil {
			return nil, a.err
		}
		return a.c, nil
	case <-ctx.Done():
		return nil, ctxError(s.addr, ctx.Err())
	case <-timer.C:
		return nil, deadlineError(ctx, deadline, s.addr)
	}
}

// runDial runs a shared dial attempt and publishes its outcome.
func (s *server) runDial(sl *slot, a *dialAttempt) {
	ctx, cancel := context.WithTimeout(s.client.life, s.cfg.dialTimeout())
	c, err := s.dial(ctx)
	cancel()
	if err == nil && !s.client.track(c) {
		c.fail(ErrClosed)
		c, err = nil, ErrClosed
	}
	sl.mu.Lock()
	sl.attempt = nil
	if err == nil {
		sl.c.Store(c)
	}
	sl.mu.Unlock()
	if err != nil && err != ErrClosed {
		if s.client.life.Err() != nil {
			err = ErrClosed
		} else {
			s.noteFailure(err)
			err = wrapAddr(s.addr, err)
		}
	}
	a.c, a.err = c, err
	close(a.done)
}

// dial connects to the server and runs the TLS handshake and auth, within
// ctx.
func (s *server) dial(ctx context.Context) (*conn, error) {
	s.dials.Add(1)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if tc := s.cfg.TLS; tc != nil {
		if tc.ServerName == "" {
			tc = tc.Clone()
			if host, _, ok := splitHostPort(s.addr); ok {
				tc.ServerName = host
			}
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tlsConn
	}
	c := newConn(s, nc)
	if s.cfg.Username != "" {
		if err := c.auth(ctx, s.cfg.Username, s.cfg.Password); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// authKey is the key of the auth set. A server started with -Y reads the
// set as credentials whatever its key and exptime.
const authKey = "memkit.auth"

// auth runs memcached's ASCII authentication: a set whose data is
// "user pass", answered STORED. The set expires at once (exptime -1), so a
// server without -Y, which stores it like any other item, keeps nothing
// anyone can read back. The connection is not yet shared: no slot is
// needed.
func (c *conn) auth(ctx context.Context, user, pass string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	data := user + " " + pass
	msg := "set " + authKey + " 0 -1 " + strconv.Itoa(len(data)) + "\r\n" + data + "\r\n"
	if _, err := c.nc.Write([]byte(msg)); err != nil {
		return err
	}
	line, err := c.rd.line()
	if err != nil {
		return err
	}
	if string(line) != "STORED" {
		return fmt.Errorf("%w: %s: %s", ErrAuth, c.srv.addr, trimCRLF(line))
	}
	return nil
}
