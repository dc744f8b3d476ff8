package memclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// times returns the time now and the call's deadline: the earlier of
// ctx's deadline and now + Config.Timeout. One clock read serves the call.
func (c *Client) times(ctx context.Context) (now, deadline time.Time) {
	now = time.Now()
	deadline = now.Add(c.cfg.timeout())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return now, deadline
}

// roundTrip sends reqs to s on one connection and waits for all replies.
// On return the caller owns every request that is not reported abandoned
// (abandoned requests belong to the connection); the returned error is a
// transport error (timeout, closed connection, down server) common to all
// of them, or nil, in which case each request's err holds its outcome.
func (c *Client) roundTrip(ctx context.Context, s *server, now, deadline time.Time, reqs []*request, abandoned []bool) error {
	cn, snt, err := c.start(ctx, s, now, deadline, reqs)
	if err != nil {
		return err
	}
	return c.finish(ctx, s, cn, snt, deadline, reqs, abandoned)
}

// start queues reqs on a connection of s, dialing one if need be. If it
// fails, none of reqs was queued.
func (c *Client) start(ctx context.Context, s *server, now, deadline time.Time, reqs []*request) (*conn, sent, error) {
	if err := ctx.Err(); err != nil {
		return nil, sent{}, ctxError(s.addr, err)
	}
	timer := reqs[0].timer // idle until reqs[0] is awaited
	cn, err := s.conn(ctx, now, deadline, timer)
	if err == nil {
		s.requests.Add(uint64(len(reqs)))
		var snt sent
		if snt, err = cn.send(ctx, now, deadline, reqs...); err == nil {
			return cn, snt, nil
		}
	}
	if isTimeout(err) {
		s.timeouts.Add(1)
	}
	return nil, sent{}, err
}

// finish waits for the replies to reqs, queued on cn by start.
func (c *Client) finish(ctx context.Context, s *server, cn *conn, snt sent, deadline time.Time, reqs []*request, abandoned []bool) error {
	var firstErr error
	// Replies come in order: whoever reads for the last request completes
	// the earlier ones on the way.
	for i := len(reqs) - 1; i >= 0; i-- {
		ab, err := cn.await(ctx, deadline, reqs[i])
		abandoned[i] = ab
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		return nil
	}
	if isTimeout(firstErr) || errors.Is(firstErr, context.DeadlineExceeded) {
		s.timeouts.Add(1)
		// A connection from which nothing has come for a while since our
		// requests went out is stuck (a frozen or unreachable server):
		// replace it, which counts against the server. A short caller
		// deadline on a busy server is not evidence of that, nor is a
		// pause of our own process: silentSince looks at the socket.
		waited := time.Duration(time.Now().UnixNano() - snt.at)
		if waited >= min(c.cfg.timeout(), stuckAfter) && cn.silentSince(snt) {
			cn.fail(&stuckError{waited: waited})
		}
	}
	return firstErr
}

// stuckAfter is how long a connection may answer nothing while a request
// waits on it before it counts as stuck (or Config.Timeout, if shorter).
const stuckAfter = 100 * time.Millisecond

func (c *Client) getItem(ctx context.Context, op opcode, key string, ttl time.Duration) (*Item, error) {
	if err := checkKey(key); err != nil {
		c.refused(ctx, op, err)
		return nil, err
	}
	if op == opGAT && c.cfg.BehindProxy {
		return nil, errProxy
	}
	r := getRequest(op)
	r.key = key
	r.ttl = ttl
	r.exp = expiration(ttl, c.now)
	owned, err := c.do(ctx, r)
	if !owned {
		return nil, err
	}
	item := r.resItem
	putRequest(r)
	if err != nil {
		return nil, err
	}
	return item, nil
}

func (c *Client) store(ctx context.Context, op opcode, item *Item) error {
	if item == nil {
		return errors.New("memclient: nil item")
	}
	if err := checkKey(item.Key); err != nil {
		c.refused(ctx, op, err)
		return err
	}
	if len(item.Value) > c.cfg.maxItemSize() {
		err := fmt.Errorf("%w: %d bytes for %q (MaxItemSize %d)", ErrValueTooLarge, len(item.Value), item.Key, c.cfg.maxItemSize())
		c.refused(ctx, op, err)
		return err
	}
	r := getRequest(op)
	r.key = item.Key
	r.item = item
	r.exp = expiration(item.TTL, c.now)
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}

func (c *Client) arith(ctx context.Context, op opcode, key string, delta uint64) (uint64, error) {
	if err := checkKey(key); err != nil {
		c.refused(ctx, op, err)
		return 0, err
	}
	r := getRequest(op)
	r.key = key
	r.delta = delta
	owned, err := c.do(ctx, r)
	if !owned {
		return 0, err
	}
	n := r.num
	putRequest(r)
	return n, err
}

// refused reports to the Observer a call refused before it reached a
// server: a malformed key, a value over MaxItemSize.
func (c *Client) refused(ctx context.Context, op opcode, err error) {
	if c.cfg.Observer != nil {
		c.observe(ctx, nil, op.String(), time.Now(), 1, 0, 0, err)
	}
}
