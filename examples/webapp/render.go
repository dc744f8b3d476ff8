package main

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// render executes the page template name into a buffer first, so that a
// template error becomes a clean 500 rather than half a page.
func (a *app) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	titles := map[string]string{"catalogue": "Catalogue", "product": "Product", "debug": "Dashboard", "account": "Account"}
	page := map[string]any{"Title": titles[name], "Data": data, "DebugLink": !a.adminListener}
	if name == "debug" {
		page["Wide"], page["Admin"] = true, true
	}
	a.renderPart(w, r, name, page)
}

// renderPart executes the template name with data, as render does, with
// no page around it.
func (a *app) renderPart(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}
