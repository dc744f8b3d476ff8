// Package middleware holds net/http middleware for memkit.
//
// Session (session.go) puts a lazily loaded session.Session in each
// request's context and saves it before the first byte of the response;
// Cache (cache.go) caches whole responses in an objcache.Cache.
//
// Both return middleware of the shape func(http.Handler) http.Handler, so
// they work with http.ServeMux and any router that takes such middleware.
package middleware
