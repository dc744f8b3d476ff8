package memclient

// TEMPORARY: replaced by the real implementation within the hour.

import (
	"context"
	"errors"
	"time"
)

var errNotImplemented = errors.New("memclient: not implemented yet")

type opcode uint8

const (
	opGet opcode = iota
	opGAT
	opTouch
	opSet
	opAdd
	opReplace
	opAppend
	opPrepend
	opCAS
	opDelete
	opIncr
	opDecr
)

// Client is a memcached client. It is safe for concurrent use.
type Client struct{ cfg Config }

// New returns a client for servers given as "host:port" or "host:port:weight".
func New(servers ...string) (*Client, error) {
	cfg := Config{}
	for _, s := range servers {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		cfg.Servers = append(cfg.Servers, srv)
	}
	return NewFromConfig(cfg)
}

// NewFromConfig returns a client for cfg.
func NewFromConfig(cfg Config) (*Client, error) { return &Client{cfg: cfg}, nil }

func (c *Client) getItem(ctx context.Context, op opcode, key string, ttl time.Duration) (*Item, error) {
	return nil, errNotImplemented
}
func (c *Client) store(ctx context.Context, op opcode, item *Item) error { return errNotImplemented }
func (c *Client) arith(ctx context.Context, op opcode, key string, d uint64) (uint64, error) {
	return 0, errNotImplemented
}
func (c *Client) getLease(ctx context.Context, key string, o LeaseOptions) (*Lease, error) {
	return nil, errNotImplemented
}
func (c *Client) invalidate(ctx context.Context, key string, ttl time.Duration) error {
	return errNotImplemented
}

// GetMulti returns the items found for keys, by key. Missing keys are absent from the map.
// When some servers fail, it returns what the others had and a MultiError naming the failed keys.
func (c *Client) GetMulti(ctx context.Context, keys []string) (map[string]*Item, error) {
	return nil, errNotImplemented
}

// SetMulti stores items, pipelined per server and fanned out in parallel; failures come back as a MultiError.
func (c *Client) SetMulti(ctx context.Context, items []*Item) error { return errNotImplemented }

// DeleteMulti deletes keys; missing keys are not errors. Failures come back as a MultiError.
func (c *Client) DeleteMulti(ctx context.Context, keys []string) error { return errNotImplemented }

// FlushAll invalidates every item on every server.
func (c *Client) FlushAll(ctx context.Context) error { return errNotImplemented }

// Stats returns each server's statistics ("stats ARGS"), by server address.
func (c *Client) Stats(ctx context.Context, args ...string) (map[string]map[string]string, error) {
	return nil, errNotImplemented
}

// Close closes every connection and stops every goroutine.
func (c *Client) Close() error { return nil }
