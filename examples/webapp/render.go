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
	titles := map[string]string{"catalogue": "Catalogue", "product": "Product", "debug": "Cache"}
	page := map[string]any{"Title": titles[name], "Data": data}
	if name == "debug" {
		page["Refresh"] = 2
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, page); err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}
