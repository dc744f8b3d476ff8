package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memkit/memkit/objcache"
)

// The catalogue: the product list, the product pages and the edit that
// invalidates them. Every cached value that shows a product (its own
// value under "product:<id>", the catalogue pages cached whole by
// middleware.Cache) carries the tag productsTag, so an edit drops them
// all with one objcache.InvalidateTags, in every process at once. The
// tag is one for all products: a catalogue page shows many of them, and
// GetOrLoadMulti stores a whole batch through one view.

// productsTag is carried by every cached value that shows products.
const productsTag = "products"

// productList holds the product list's memoized queries.
type productList struct {
	products     *objcache.Cache // a.cache.WithTags(productsTag); nil in the in-memory mode
	pageIDs      func(context.Context, int) ([]int64, error)
	productsByID func(context.Context, []int64) (map[int64]Product, error)
}

// setupCatalogue memoizes the catalogue's queries: on objcache when the
// shop has memcached, in the local memo otherwise. The product list is
// the page's IDs (memoized per page) and then its products, read with one
// GetOrLoadMulti: one round trip to memcached, and for the products that
// are not cached one `WHERE id IN (...)` query. Product values are shared
// with the product pages: MemoizeMulti and Memoize1 under one name store
// a product under the same key.
func (a *app) setupCatalogue(ttl time.Duration) {
	if a.cache != nil {
		a.products = a.cache.WithTags(productsTag)
		a.productByID = objcache.Memoize1(a.products, "product", ttl, a.db.ProductByID)
		a.productsByID = objcache.MemoizeMulti(a.products, "product", ttl, a.db.ProductsByIDs)
		a.pageIDs = objcache.Memoize1(a.cache, "catalogue.ids", ttl, a.db.PageIDs)
		a.productCount = objcache.Memoize0(a.cache, "catalogue.count", ttl, a.db.ProductCount)
	} else {
		a.productByID = localMemo1(a.local, "product", a.db.ProductByID)
		a.productsByID = localMemoMulti(a.local, "product", a.db.ProductsByIDs)
		a.pageIDs = localMemo1(a.local, "catalogue.ids", a.db.PageIDs)
		a.productCount = localMemo0(a.local, "catalogue.count", a.db.ProductCount)
	}
	a.productPage = a.listPage
}

// listPage returns the products of catalogue page page, in order.
func (a *app) listPage(ctx context.Context, page int) ([]Product, error) {
	ids, err := a.pageIDs(ctx, page)
	if err != nil {
		return nil, err
	}
	return a.listProducts(ctx, ids)
}

// listProducts returns the products with the given IDs, in that order;
// IDs with no product are left out.
func (a *app) listProducts(ctx context.Context, ids []int64) ([]Product, error) {
	byID, err := a.productsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Product, 0, len(ids))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// productEdit is the body of POST /admin/products/{id}: the fields to
// change.
type productEdit struct {
	Name        *string `json:"name"`
	Category    *string `json:"category"`
	PriceCents  *int64  `json:"price_cents"`
	Description *string `json:"description"`
}

// editProduct is POST /admin/products/{id} with a JSON productEdit: it
// updates the row, then invalidates every cached copy of a product (the
// tag), so that every process of the shop shows the edit on its next
// request. It answers the product as JSON. As a demo it has no accounts:
// it only accepts requests from loopback, and only JSON, which a form on
// another site cannot send.
//
//	curl -H 'Content-Type: application/json' -d '{"price_cents": 999}' localhost:8080/admin/products/7
func (a *app) editProduct(w http.ResponseWriter, r *http.Request) {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !net.ParseIP(host).IsLoopback() {
		http.Error(w, "the admin API answers loopback only", http.StatusForbidden)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "send application/json", http.StatusUnsupportedMediaType)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "bad product id", http.StatusBadRequest)
		return
	}
	var edit productEdit
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&edit); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	p, err := a.db.ProductByID(ctx, id) // the row, not a cached copy
	if errors.Is(err, objcache.ErrNotFound) {
		http.Error(w, "no such product", http.StatusNotFound)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := edit.apply(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := a.db.UpdateProduct(ctx, p); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.invalidateProducts(ctx); err != nil {
		// The row changed but the caches could not be told: say so
		// rather than pretend the edit is visible.
		a.serverError(w, r, fmt.Errorf("product %d updated, caches not invalidated: %w", id, err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (e productEdit) apply(p *Product) error {
	if e.Name != nil {
		p.Name = strings.TrimSpace(*e.Name)
	}
	if e.Category != nil {
		p.Category = strings.TrimSpace(*e.Category)
	}
	if e.PriceCents != nil {
		p.PriceCents = *e.PriceCents
	}
	if e.Description != nil {
		p.Description = *e.Description
	}
	switch {
	case p.Name == "" || len(p.Name) > 200:
		return errors.New("name: 1 to 200 characters")
	case p.Category == "" || len(p.Category) > 100:
		return errors.New("category: 1 to 100 characters")
	case p.PriceCents < 0:
		return errors.New("price_cents: not negative")
	case len(p.Description) > 10000:
		return errors.New("description: at most 10000 characters")
	}
	return nil
}

// invalidateProducts drops every cached copy of every product: the tag on
// memcached (all processes), the local memo in the in-memory mode.
func (a *app) invalidateProducts(ctx context.Context) error {
	if a.products != nil {
		return a.products.InvalidateTags(ctx, productsTag)
	}
	a.local.clear()
	return nil
}
