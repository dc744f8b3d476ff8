package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// The batched raw client ("limit") measures what this machine can do: a
// minimal memcached client that writes meta get requests (mg <key> v) in
// batches, limitConns connections per server, limitDepth requests in
// flight on each, and checks every reply. Each Get benchmark runs it
// beside the clients, and every client's ops/s is also shown as a
// fraction of its ops/s in the same round.
const (
	limitName    = "limit"
	limitConns   = 8  // connections per server
	limitDepth   = 64 // requests written in one batch, in flight per connection
	limitTimeout = 30 * time.Second
	// limitBufSize is the read buffer of a connection; a value larger
	// than what is buffered is read straight into the scratch slice.
	limitBufSize = 64 << 10
)

// errLimitStep means a reply did not match its request: the connection
// is out of step and is closed.
var errLimitStep = errors.New("limit: reply out of step")

// limitConn is one connection of the batched client. It is not safe for
// concurrent use: each worker owns one.
type limitConn struct {
	addr    string
	keys    []string // stored on this server
	offset  int      // where this connection starts in keys
	size    int      // length of every value
	header  string   // the reply line of a hit: "VA <size>"
	depth   int      // requests per batch
	nc      net.Conn // nil until dialled, and after an error
	br      *bufio.Reader
	req     []byte // the batch being written, reused
	scratch []byte // values are read into it and dropped
}

func (lc *limitConn) dial() error {
	nc, err := net.DialTimeout("tcp", lc.addr, 5*time.Second)
	if err != nil {
		return err
	}
	lc.nc = nc
	if lc.br == nil {
		lc.br = bufio.NewReaderSize(nc, limitBufSize)
	} else {
		lc.br.Reset(nc)
	}
	return nil
}

func (lc *limitConn) close() {
	if lc.nc != nil {
		_ = lc.nc.Close()
		lc.nc = nil
	}
}

// batch writes lc.depth meta gets (i-th batch of this connection) and an
// mn in one write, then reads and checks every reply: a VA with a value of
// exactly lc.size bytes and its CRLF for each key, then MN, so that a
// reply missing, extra or of another length shows. Any mismatch closes
// the connection (the next batch dials again) and is returned.
func (lc *limitConn) batch(i int) (err error) {
	if lc.nc == nil {
		if err := lc.dial(); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			lc.close()
		}
	}()
	if err := lc.nc.SetDeadline(time.Now().Add(limitTimeout)); err != nil {
		return err
	}
	first := lc.offset + i*lc.depth
	lc.req = lc.req[:0]
	for j := 0; j < lc.depth; j++ {
		lc.req = append(lc.req, "mg "...)
		lc.req = append(lc.req, lc.keys[(first+j)%len(lc.keys)]...)
		lc.req = append(lc.req, " v\r\n"...)
	}
	lc.req = append(lc.req, "mn\r\n"...)
	if _, err := lc.nc.Write(lc.req); err != nil {
		return err
	}
	for j := 0; j < lc.depth; j++ {
		if err := lc.readValue(); err != nil {
			return fmt.Errorf("reply %d of %d: %w", j+1, lc.depth, err)
		}
	}
	line, err := lc.line()
	if err != nil {
		return err
	}
	if string(line) != "MN" {
		return fmt.Errorf("%w: got %.20q after %d replies, want MN", errLimitStep, line, lc.depth)
	}
	return nil
}

// readValue reads one "VA <size>" reply and its value; a reply of any
// other length is out of step.
func (lc *limitConn) readValue() error {
	line, err := lc.line()
	if err != nil {
		return err
	}
	if string(line) != lc.header {
		if string(line) == "EN" {
			return errors.New("limit: cache miss")
		}
		return fmt.Errorf("%w: got %.20q, want %q", errLimitStep, line, lc.header)
	}
	if _, err := io.ReadFull(lc.br, lc.scratch[:lc.size+2]); err != nil {
		return err
	}
	if lc.scratch[lc.size] != '\r' || lc.scratch[lc.size+1] != '\n' {
		return fmt.Errorf("%w: value not ended by CRLF", errLimitStep)
	}
	return nil
}

// line reads one reply line without its CRLF; the slice is valid until
// the next read.
func (lc *limitConn) line() ([]byte, error) {
	line, err := lc.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", errLimitStep)
	}
	return line[:len(line)-2], nil
}

// store sets every key of lc to value (ms, one at a time).
func (lc *limitConn) store(value []byte) error {
	if err := lc.dial(); err != nil {
		return err
	}
	if err := lc.nc.SetDeadline(time.Now().Add(limitTimeout)); err != nil {
		return err
	}
	for _, k := range lc.keys {
		lc.req = append(lc.req[:0], "ms "...)
		lc.req = append(lc.req, k...)
		lc.req = append(lc.req, ' ')
		lc.req = strconv.AppendInt(lc.req, int64(len(value)), 10)
		lc.req = append(lc.req, " T0\r\n"...)
		lc.req = append(lc.req, value...)
		lc.req = append(lc.req, "\r\n"...)
		if _, err := lc.nc.Write(lc.req); err != nil {
			return err
		}
		line, err := lc.line()
		if err != nil {
			return err
		}
		if string(line) != "HD" {
			return fmt.Errorf("limit: storing %s: %.40q", k, line)
		}
	}
	return nil
}

// limitSetup returns the setup of the batched client on servers: depth
// requests per batch on each of limitConns connections per server, one
// worker per connection (limitConns*len(servers) workers, each call one
// batch of depth Gets). Each server holds its own keys, nkeys in all, so
// no hashing is needed.
func limitSetup(size, nkeys, depth int) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		val := value(size)
		perServer := max(1, (nkeys+len(servers)-1)/len(servers))
		conns := make([]*limitConn, 0, limitConns*len(servers))
		closeFn := func() {
			for _, lc := range conns {
				lc.close()
			}
		}
		for s, addr := range servers {
			keys := make([]string, perServer)
			for i := range keys {
				keys[i] = fmt.Sprintf("limit:%d:%d:%d", size, s, i)
			}
			for c := 0; c < limitConns; c++ {
				lc := &limitConn{addr: addr, keys: keys, offset: c * 7919, size: size, header: "VA " + strconv.Itoa(size),
					depth: depth, scratch: make([]byte, size+2)}
				conns = append(conns, lc)
				if c == 0 {
					if err := lc.store(val); err != nil {
						closeFn()
						return nil, nil, err
					}
				} else if err := lc.dial(); err != nil {
					closeFn()
					return nil, nil, err
				}
			}
		}
		return func(_ context.Context, w, i int) error {
			return conns[w].batch(i)
		}, closeFn, nil
	}
}
