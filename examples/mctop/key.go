package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memkit/memkit/memclient"
)

// The key inspector (-key): where a key is, and what memcached knows of
// it. It asks every server, in parallel, on a connection of its own:
// `me <key>` (memcached's debug command, which changes nothing) to see
// whether the server holds it and in which slab class, then, where it
// does, `mg <key> t l h s f` for the rest. memcached 1.6.18's `me`
// reports exp with the wrong sign, so mg says the TTL.

// keyTimeout bounds the inspection of one server.
const keyTimeout = 2 * time.Second

// keyInfo is what one server says of a key.
type keyInfo struct {
	Server string
	Err    error // the server could not be asked
	Found  bool
	// From mg: the TTL left (-1: never expires), the time since the last
	// access (memcached moves it at most once a minute), whether the item
	// was fetched before this inspection, the value's size and its flags.
	TTL        time.Duration
	LastAccess time.Duration
	Fetched    bool
	Size       int
	Flags      uint32
	// SlabClass is from me.
	SlabClass int
}

// checkKey refuses a key that could not be sent as one word: memcached's
// rules (1 to 250 bytes, no space or control character).
func checkKey(key string) error {
	if key == "" || len(key) > 250 {
		return fmt.Errorf("-key: %d bytes, want 1 to 250", len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("-key %q: no spaces or control characters", key)
		}
	}
	return nil
}

// inspectKey asks every server about key, which checkKey accepted.
func inspectKey(ctx context.Context, servers []memclient.Server, key string) []keyInfo {
	out := make([]keyInfo, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, keyTimeout)
			defer cancel()
			out[i] = inspectOn(ctx, s.Addr, key)
		})
	}
	wg.Wait()
	return out
}

func inspectOn(ctx context.Context, addr, key string) keyInfo {
	info := keyInfo{Server: addr}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		info.Err = err
		return info
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // cancellation
	defer stop()
	r := bufio.NewReader(conn)
	ask := func(cmd string) (string, error) {
		if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		return strings.TrimRight(line, "\r\n"), err
	}

	line, err := ask("me " + key)
	if err != nil {
		info.Err = err
		return info
	}
	if line == "EN" {
		return info // not on this server
	}
	if info.SlabClass, err = parseMe(line, key); err != nil {
		info.Err = err
		return info
	}
	if line, err = ask("mg " + key + " t l h s f"); err != nil {
		info.Err = err
		return info
	}
	if line == "EN" {
		return info // gone (expired, evicted) between the two
	}
	info.Err = parseMg(line, &info)
	info.Found = info.Err == nil
	return info
}

// parseMe reads the slab class from `me`'s answer:
// "ME <key> exp=-1 la=5 cas=2 fetch=no cls=1 size=63".
func parseMe(line, key string) (int, error) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "ME" || f[1] != key {
		return 0, fmt.Errorf("me: unexpected answer %q", line)
	}
	for _, kv := range f[2:] {
		if v, ok := strings.CutPrefix(kv, "cls="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("me: no slab class in %q", line)
}

// parseMg reads `mg <key> t l h s f`'s answer: "HD t97 l3 h0 s5 f7".
func parseMg(line string, info *keyInfo) error {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "HD" {
		return fmt.Errorf("mg: unexpected answer %q", line)
	}
	seen := 0
	for _, tok := range f[1:] {
		if tok == "" {
			continue
		}
		v, err := strconv.ParseInt(tok[1:], 10, 64)
		if err != nil {
			return fmt.Errorf("mg: bad %q in %q", tok, line)
		}
		switch tok[0] {
		case 't':
			info.TTL = time.Duration(v) * time.Second
			if v < 0 {
				info.TTL = -1
			}
		case 'l':
			info.LastAccess = time.Duration(v) * time.Second
		case 'h':
			info.Fetched = v != 0
		case 's':
			info.Size = int(v)
		case 'f':
			info.Flags = uint32(v)
		default:
			continue
		}
		seen++
	}
	if seen < 5 {
		return fmt.Errorf("mg: missing flags in %q", line)
	}
	return nil
}

// printKey inspects key and prints what every server says; it reports
// whether any holds it.
func printKey(ctx context.Context, w io.Writer, servers []memclient.Server, key string) bool {
	infos := inspectKey(ctx, servers, key)
	fmt.Fprintf(w, "key %q\n\n", key)
	name := len("SERVER")
	for _, in := range infos {
		name = max(name, len(in.Server))
	}
	fmt.Fprintf(w, "%-*s  %-5s  %-10s  %-11s  %-7s  %8s  %6s  %s\n", name, "SERVER", "FOUND", "TTL LEFT", "LAST ACCESS", "FETCHED", "SIZE", "FLAGS", "SLAB CLASS")
	var found []string
	var errs []error
	for _, in := range infos {
		switch {
		case in.Err != nil:
			fmt.Fprintf(w, "%-*s  %s\n", name, in.Server, "ERROR: "+in.Err.Error())
			errs = append(errs, in.Err)
		case !in.Found:
			fmt.Fprintf(w, "%-*s  no\n", name, in.Server)
		default:
			found = append(found, in.Server)
			fetched := "no"
			if in.Fetched {
				fetched = "yes"
			}
			fmt.Fprintf(w, "%-*s  %-5s  %-10s  %-11s  %-7s  %8s  %6d  %d\n", name, in.Server, "yes",
				fmtTTL(in.TTL), in.LastAccess.String()+" ago", fetched, strconv.Itoa(in.Size)+" B", in.Flags, in.SlabClass)
		}
	}
	fmt.Fprintln(w)
	switch len(found) {
	case 0:
		fmt.Fprintln(w, "No server holds the key.")
	case 1:
		fmt.Fprintf(w, "On %s.", found[0])
	default:
		fmt.Fprintf(w, "On %d servers (%s): replicas, a gutter copy, or a copy left behind when the servers changed.", len(found), strings.Join(found, ", "))
	}
	if len(found) > 0 {
		fmt.Fprintln(w, " Reading it with mg marked it fetched; memcached moves an item's last access at most once a minute.")
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(w, "Some servers could not be asked: the key may be there too.")
	}
	return len(found) > 0
}

// fmtTTL formats the TTL left: "never" for an item that does not expire.
func fmtTTL(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.String()
}
