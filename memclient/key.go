package memclient

import (
	"fmt"
	"math"
	"time"
)

// checkKey refuses keys that could break the protocol.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > 250 {
		return fmt.Errorf("%w: length %d (want 1 to 250 bytes)", ErrMalformedKey, len(key))
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("%w: byte %#x at %d in %q", ErrMalformedKey, b, i, key)
		}
	}
	return nil
}

// maxRelativeTTL is the longest TTL memcached takes as relative seconds;
// longer ones must be absolute Unix times.
const maxRelativeTTL = 30 * 24 * 60 * 60

// maxExptime is the latest expiry memcached can hold: it parses exptime as
// a signed 32-bit Unix time, 2038-01-19 03:14:07 UTC.
const maxExptime = math.MaxInt32

// expiration converts a TTL to memcached's exptime. 0 and negative TTLs
// never expire (0); sub-second ones round up to a second; over 30 days
// becomes an absolute Unix time, clamped to maxExptime: a TTL that reaches
// past January 2038 expires then, which memcached can express, rather than
// at once, which a larger number would make it do.
func expiration(ttl time.Duration, now func() time.Time) int64 {
	if ttl <= 0 {
		return 0
	}
	secs := ceilSeconds(ttl)
	if secs <= maxRelativeTTL {
		return secs
	}
	return min(now().Unix()+secs, maxExptime)
}

// ceilSeconds is d in whole seconds, rounded up, without overflowing.
func ceilSeconds(d time.Duration) int64 {
	secs := int64(d / time.Second)
	if d%time.Second > 0 {
		secs++
	}
	return secs
}

// checkCredentials refuses a username memcached's ASCII auth cannot carry
// ("user pass" is split at the first space) and a password with a line
// break, which could not be told from the end of the auth data by a
// reader of the stream.
func checkCredentials(user, pass string) error {
	if user == "" {
		return nil
	}
	for i := 0; i < len(user); i++ {
		if b := user[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("memclient: Username has byte %#x at %d; want no space or control character", b, i)
		}
	}
	for i := 0; i < len(pass); i++ {
		if b := pass[i]; b == '\r' || b == '\n' {
			return fmt.Errorf("memclient: Password has a line break at %d", i)
		}
	}
	return nil
}
