package main

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/memkit/memkit/session"
)

// RememberLifetime is how long a "remember me" login lasts.
const RememberLifetime = 30 * 24 * time.Hour

// accountRoutes adds the sign-in, API-token and account routes:
//
//	POST /login                     form user, remember=1: sign in (a persistent cookie only with remember=1)
//	POST /logout                    sign out
//	POST /api/login                 form user: sign in for a header token: {"token": "..."}
//	GET  /api/sessions              {"sessions": [{"id", "current", "user_agent", "ip", "created", "last_seen"}]}
//	POST /api/sessions/revoke       form id: sign that session out (404 for an unknown id)
//	POST /api/sessions/revoke-others sign out every session but this one
//	POST /api/logout-everywhere     sign out every session, this one too
//	GET  /account                   the same as a page
//
// The API routes answer 204 on success, 401 when not signed in, and
// errors as {"error": "..."}; a browser form that sends a "next" page is
// redirected there instead.
func (a *app) accountRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("POST /api/login", a.apiLogin)
	mux.HandleFunc("GET /api/sessions", a.apiSessions)
	mux.HandleFunc("POST /api/sessions/revoke", a.apiRevoke)
	mux.HandleFunc("POST /api/sessions/revoke-others", a.apiRevokeOthers)
	mux.HandleFunc("POST /api/logout-everywhere", a.apiLogoutEverywhere)
	mux.HandleFunc("GET /account", a.account)
}

// signIn binds the request's session to the form's user (renewing the
// session ID against fixation). It writes the error response itself and
// returns false when it fails.
func (a *app) signIn(w http.ResponseWriter, r *http.Request) (*session.Session, string, bool) {
	user := strings.TrimSpace(r.FormValue("user"))
	if user == "" || len(user) > 64 {
		apiError(w, http.StatusBadRequest, "user: 1 to 64 characters")
		return nil, "", false
	}
	s := session.FromContext(r.Context())
	if err := s.Login(r.Context(), user); err != nil {
		a.requestError(r, err)
		apiError(w, http.StatusServiceUnavailable, "sessions unavailable, try again")
		return nil, "", false
	}
	_ = s.Set("user", user)
	return s, user, true
}

// login is POST /login: it signs the browser in. With remember=1 the
// session lasts RememberLifetime in a persistent cookie; otherwise its
// cookie ends with the browser.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.signIn(w, r)
	if !ok {
		return
	}
	if r.FormValue("remember") == "1" {
		_ = s.SetLifetime(RememberLifetime)
		_ = s.SetPersistent(true)
	}
	a.done(w, r, map[string]any{"user": user})
}

// logout is POST /logout: it deletes the session (and its entry in the
// user's list) and expires its cookie.
func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if err := s.Destroy(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.done(w, r, map[string]any{"user": nil})
}

// apiLogin is POST /api/login: it signs an API client in and returns the
// token to send as "Authorization: Bearer <token>". No cookie is set.
func (a *app) apiLogin(w http.ResponseWriter, r *http.Request) {
	s, _, ok := a.signIn(w, r)
	if !ok {
		return
	}
	tok, err := s.Token()
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// signedIn returns the request's session and its user, or writes 401 and
// returns false.
func signedIn(w http.ResponseWriter, r *http.Request) (*session.Session, string, bool) {
	s := session.FromContext(r.Context())
	user := s.User(r.Context())
	if user == "" {
		if err := s.Err(); err != nil && session.Fatal(err) {
			apiError(w, http.StatusServiceUnavailable, "sessions unavailable, try again")
			return nil, "", false
		}
		apiError(w, http.StatusUnauthorized, "not signed in")
		return nil, "", false
	}
	return s, user, true
}

// sessionJSON is one session in GET /api/sessions.
type sessionJSON struct {
	ID        string `json:"id"` // the public handle
	Current   bool   `json:"current"`
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	Created   string `json:"created"`   // RFC 3339, UTC
	LastSeen  string `json:"last_seen"` // RFC 3339, UTC
}

// userSessions lists the sessions of the request's user, newest first.
func (a *app) userSessions(r *http.Request, s *session.Session, user string) ([]sessionJSON, error) {
	list, err := a.sessions.UserSessions(r.Context(), user)
	if err != nil {
		return nil, err
	}
	cur := s.Handle(r.Context())
	out := make([]sessionJSON, 0, len(list))
	for _, us := range list {
		out = append(out, sessionJSON{
			ID: us.Handle, Current: us.Handle == cur, UserAgent: us.UserAgent, IP: us.IP,
			Created: us.Created.UTC().Format(time.RFC3339), LastSeen: us.LastSeen.UTC().Format(time.RFC3339),
		})
	}
	return out, nil
}

// apiSessions is GET /api/sessions.
func (a *app) apiSessions(w http.ResponseWriter, r *http.Request) {
	s, user, ok := signedIn(w, r)
	if !ok {
		return
	}
	list, err := a.userSessions(r, s, user)
	if err != nil {
		a.apiFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": list})
}

// apiRevoke is POST /api/sessions/revoke (form id): it signs out one of
// the user's sessions; revoking the current one signs this browser out.
func (a *app) apiRevoke(w http.ResponseWriter, r *http.Request) {
	s, user, ok := signedIn(w, r)
	if !ok {
		return
	}
	id := r.FormValue("id")
	current := id == s.Handle(r.Context())
	err := a.sessions.RevokeSession(r.Context(), user, id)
	if errors.Is(err, session.ErrUnknownSession) {
		apiError(w, http.StatusNotFound, "no such session")
		return
	}
	if err == nil && current {
		err = s.Destroy(r.Context())
	}
	if err != nil {
		a.apiFailed(w, r, err)
		return
	}
	a.noContent(w, r)
}

// apiRevokeOthers is POST /api/sessions/revoke-others: every session of
// the user but this one is signed out, with one write.
func (a *app) apiRevokeOthers(w http.ResponseWriter, r *http.Request) {
	s, _, ok := signedIn(w, r)
	if !ok {
		return
	}
	err := a.sessions.RevokeOtherSessions(r.Context(), s)
	if errors.Is(err, session.ErrNotLoggedIn) {
		apiError(w, http.StatusUnauthorized, "not signed in")
		return
	}
	if err != nil {
		a.apiFailed(w, r, err)
		return
	}
	a.noContent(w, r)
}

// apiLogoutEverywhere is POST /api/logout-everywhere: every session of
// the user, this one included, is signed out.
func (a *app) apiLogoutEverywhere(w http.ResponseWriter, r *http.Request) {
	s, user, ok := signedIn(w, r)
	if !ok {
		return
	}
	err := a.sessions.RevokeUser(r.Context(), user)
	if err == nil {
		err = s.Destroy(r.Context())
	}
	if err != nil {
		a.apiFailed(w, r, err)
		return
	}
	a.noContent(w, r)
}

// account is GET /account: the user's sessions with a button each, or a
// sign-in form.
func (a *app) account(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	data := map[string]any{}
	if user := s.User(r.Context()); user != "" {
		list, err := a.userSessions(r, s, user)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		data["User"], data["Sessions"] = user, list
	}
	a.render(w, r, "account", data)
}

// noContent answers a successful API call: 204, or a redirect to the
// form's "next" page for a browser form.
func (a *app) noContent(w http.ResponseWriter, r *http.Request) {
	if next := r.FormValue("next"); safeNext(next) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// safeNext reports whether next names a page of this site.
func safeNext(next string) bool {
	return strings.HasPrefix(next, "/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, `\`)
}

// apiFailed logs err and answers 503 {"error": ...}.
func (a *app) apiFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.requestError(r, err)
	apiError(w, http.StatusServiceUnavailable, "sessions unavailable, try again")
}

// apiError answers {"error": msg} with status.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
