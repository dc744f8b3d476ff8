package memclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrCacheMiss means the key has no item.
	ErrCacheMiss = errors.New("memclient: cache miss")
	// ErrNotStored means a conditional store (Add, Replace, Append,
	// Prepend) did not happen because its condition was not met.
	ErrNotStored = errors.New("memclient: item not stored")
	// ErrCASConflict means CompareAndSwap lost: the item changed since it
	// was read.
	ErrCASConflict = errors.New("memclient: compare-and-swap conflict")
	// ErrMalformedKey means a key is empty, longer than 250 bytes, or
	// holds a space, a control character or DEL. Nothing was sent.
	ErrMalformedKey = errors.New("memclient: malformed key")
	// ErrValueTooLarge means the value exceeds Config.MaxItemSize (nothing
	// was sent) or the server's item size limit.
	ErrValueTooLarge = errors.New("memclient: value too large")
	// ErrNoServers means the client has no servers configured.
	ErrNoServers = errors.New("memclient: no servers configured")
	// ErrServerUnavailable means the key's server is marked down after
	// repeated failures; the call failed fast without contacting it.
	ErrServerUnavailable = errors.New("memclient: server unavailable")
	// ErrNotSupported means the operation needs the meta protocol, or
	// cannot pass the proxy the client is behind (Config.BehindProxy).
	// Nothing was sent.
	ErrNotSupported = errors.New("memclient: operation not supported")
	// ErrClosed means the client was closed.
	ErrClosed = errors.New("memclient: client closed")
	// ErrAuth means the server refused the configured credentials.
	ErrAuth = errors.New("memclient: authentication failed")
	// ErrProtocol means a server sent what its request cannot get: a
	// reply that is malformed, answers another request (one was lost or
	// repeated on the way), or comes unasked. The connection is closed
	// and every request on it fails with an error matching ErrProtocol;
	// no reply is ever returned for another request.
	ErrProtocol = errors.New("memclient: protocol error")
)

// ServerError is an error line from a server (SERVER_ERROR, CLIENT_ERROR or
// ERROR) that maps to no sentinel.
type ServerError struct {
	Addr    string // server address
	Message string // the line as the server sent it, without CRLF
}

func (e *ServerError) Error() string {
	return "memclient: " + e.Addr + ": " + e.Message
}

// unavailableError is ErrServerUnavailable naming the server.
type unavailableError struct {
	addr  string
	cause error // the failure that marked it down, if known
}

func (e *unavailableError) Error() string {
	s := "memclient: server " + e.addr + " unavailable"
	if e.cause != nil {
		s += " (" + e.cause.Error() + ")"
	}
	return s
}

func (e *unavailableError) Is(target error) bool { return target == ErrServerUnavailable }

// MultiError maps each key that failed in a multi-key call to its error.
// The call's other keys succeeded. It unwraps to every key error, so
// errors.Is(err, ErrServerUnavailable) tells whether a dead server was the
// cause.
type MultiError map[string]error

func (m MultiError) Error() string {
	// Group keys by error message so that 1000 keys on one dead server
	// read as one line.
	byMsg := make(map[string][]string)
	for k, err := range m {
		byMsg[err.Error()] = append(byMsg[err.Error()], k)
	}
	msgs := make([]string, 0, len(byMsg))
	for msg := range byMsg {
		msgs = append(msgs, msg)
	}
	sort.Strings(msgs)
	var b strings.Builder
	b.WriteString("memclient: ")
	b.WriteString(itoa(len(m)))
	b.WriteString(" key(s) failed")
	for _, msg := range msgs {
		keys := byMsg[msg]
		sort.Strings(keys)
		b.WriteString("; ")
		b.WriteString(msg)
		b.WriteString(" [")
		for i, k := range keys {
			if i == 5 {
				b.WriteString(", ...")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns the key errors.
func (m MultiError) Unwrap() []error {
	out := make([]error, 0, len(m))
	for _, err := range m {
		out = append(out, err)
	}
	return out
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// timeoutError is returned when Config.Timeout expires before the reply.
// It matches context.DeadlineExceeded and reports Timeout() true.
type timeoutError struct{ addr string }

func (e *timeoutError) Error() string {
	return "memclient: " + e.addr + ": timeout waiting for the server"
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

func isTimeout(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}

// stuckError fails the requests on a connection found stuck. It reports
// Timeout() true, but does not match context.DeadlineExceeded: their own
// deadlines have not passed.
type stuckError struct{ waited time.Duration }

func (e *stuckError) Error() string {
	return "connection stuck: no reply for " + e.waited.Round(time.Millisecond).String()
}
func (e *stuckError) Timeout() bool   { return true }
func (e *stuckError) Temporary() bool { return true }

// deadlineError is the error for a wait that reached deadline: the
// context's own error when deadline is the context's (our timer may fire a
// moment before ctx.Done), else a timeoutError for Config.Timeout.
func deadlineError(ctx context.Context, deadline time.Time, addr string) error {
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		return ctxError(addr, context.DeadlineExceeded)
	}
	return &timeoutError{addr: addr}
}

// ctxError names the server a call was waiting on when its context ended;
// it still matches the context's error with errors.Is.
func ctxError(addr string, err error) error {
	return fmt.Errorf("memclient: %s: %w", addr, err)
}

func wrapAddr(addr string, err error) error {
	if err == ErrClosed {
		return err
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return ctxError(addr, err)
	}
	return fmt.Errorf("memclient: %s: %w", addr, err)
}

// errNeedsMeta and errProxy say why an operation is not supported.
var (
	errNeedsMeta = fmt.Errorf("%w: it needs the meta protocol (Protocol: ProtocolMeta)", ErrNotSupported)
	errProxy     = fmt.Errorf("%w: a proxy such as twemproxy does not pass it (Config.BehindProxy)", ErrNotSupported)
)

// errNoMeta explains a connection closed, or answered ERROR, before any
// reply to a meta command: the server does not speak it.
var errNoMeta = errors.New("the server closed the connection, or answered ERROR, without answering a meta command: is it a proxy such as twemproxy, or memcached older than 1.6.10? Use Protocol: ProtocolText (and BehindProxy for a proxy)")
