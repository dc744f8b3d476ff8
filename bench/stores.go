package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/gob"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// ttlSeconds converts an expiry or max age to a memcached expiration: a
// relative number of seconds up to 30 days, an absolute Unix time beyond.
func ttlSeconds(d time.Duration) int32 {
	secs := int64(d / time.Second)
	if secs <= 0 {
		return -1 // already expired: memcached treats negative as expired
	}
	if secs > 30*24*3600 {
		return int32(time.Now().Unix() + secs)
	}
	return int32(secs)
}

// scsStore is an scs.Store on memcached through gomemcache; scs v2 has no
// memcached store of its own. It is safe for concurrent use.
type scsStore struct {
	client *memcache.Client
	prefix string
}

var _ scs.Store = (*scsStore)(nil)

func (s *scsStore) Find(token string) ([]byte, bool, error) {
	it, err := s.client.Get(s.prefix + token)
	if errors.Is(err, memcache.ErrCacheMiss) || errors.Is(err, memcache.ErrMalformedKey) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return it.Value, true, nil
}

func (s *scsStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.client.Set(&memcache.Item{Key: s.prefix + token, Value: b, Expiration: ttlSeconds(time.Until(expiry))})
}

func (s *scsStore) Delete(token string) error {
	err := s.client.Delete(s.prefix + token)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return err
}

// gorillaStore is a gorilla/sessions Store that keeps only the session ID
// in a securecookie-signed cookie and the gob-encoded values in memcached
// through gomemcache (the redistore pattern); gorilla/sessions has no
// memcached store of its own. It is safe for concurrent use.
type gorillaStore struct {
	client  *memcache.Client
	prefix  string
	codecs  []securecookie.Codec
	options sessions.Options
}

var _ sessions.Store = (*gorillaStore)(nil)

func newGorillaStore(client *memcache.Client, prefix string, keyPairs ...[]byte) *gorillaStore {
	s := &gorillaStore{
		client: client,
		prefix: prefix,
		codecs: securecookie.CodecsFromPairs(keyPairs...),
		options: sessions.Options{
			Path:     "/",
			MaxAge:   86400,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
		},
	}
	for _, c := range s.codecs {
		c.(*securecookie.SecureCookie).MaxAge(s.options.MaxAge)
	}
	return s
}

// Get returns the request's session, cached in the request's registry.
func (s *gorillaStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the session named by the request's cookie, or returns a new
// one.
func (s *gorillaStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := s.options
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var id string
	if err := securecookie.DecodeMulti(name, c.Value, &id, s.codecs...); err != nil {
		return sess, nil // tampered or expired cookie: a new session
	}
	it, err := s.client.Get(s.prefix + id)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	if err := gob.NewDecoder(bytes.NewReader(it.Value)).Decode(&sess.Values); err != nil {
		return sess, err
	}
	sess.ID, sess.IsNew = id, false
	return sess, nil
}

// Save stores the session's values and sets its cookie; MaxAge < 0
// deletes it.
func (s *gorillaStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			if err := s.client.Delete(s.prefix + sess.ID); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		sess.ID = strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(sess.Values); err != nil {
		return err
	}
	ttl := ttlSeconds(time.Duration(sess.Options.MaxAge) * time.Second)
	if err := s.client.Set(&memcache.Item{Key: s.prefix + sess.ID, Value: buf.Bytes(), Expiration: ttl}); err != nil {
		return err
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), sess.ID, s.codecs...)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}
