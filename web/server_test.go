package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/admin"
)

func testServer(pprofOn bool) *Server {
	return New(Sources{
		Status: func() admin.Status {
			return admin.Status{Master: "db1", Epoch: 7, Clusters: []admin.ClusterStatus{{Name: "default", Master: "db1", Epoch: 7,
				Backends: []admin.BackendStatus{{Cluster: "default", Name: "db1", Role: "master"}}}}}
		},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "switchyard_up 1\n") }),
		Ready:   func() (bool, string) { return false, "master db1 is down" },
		User:    "admin", Password: "s3cret", Pprof: pprofOn,
	}, zap.NewNop())
}

func get(t *testing.T, h http.Handler, path, user, pass string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAccess(t *testing.T) {
	tests := []struct {
		path, user, pass string
		pprof            bool
		code             int
		body             string
	}{
		{"/healthz", "", "", false, 200, "ok"},
		{"/readyz", "", "", false, 503, "master db1 is down"},
		{"/", "", "", false, 401, "authentication required"},
		{"/", "admin", "wrong", false, 401, "authentication required"},
		{"/", "other", "s3cret", false, 401, "authentication required"},
		{"/", "admin", "s3cret", false, 200, "<title>Switchyard</title>"},
		{"/app.js", "admin", "s3cret", false, 200, "api/status"},
		{"/style.css", "admin", "s3cret", false, 200, "--master"},
		{"/api/status", "", "", false, 401, ""},
		{"/api/status", "admin", "s3cret", false, 200, `"master": "db1"`},
		{"/metrics", "", "", false, 401, ""},
		{"/metrics", "admin", "s3cret", false, 200, "switchyard_up 1"},
		{"/debug/pprof/", "admin", "s3cret", false, 404, ""},
		{"/debug/pprof/", "", "", true, 401, ""},
		{"/debug/pprof/", "admin", "s3cret", true, 200, "goroutine"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.user, func(t *testing.T) {
			rec := get(t, testServer(tt.pprof).Handler(), tt.path, tt.user, tt.pass)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("%s: %d %q, want %d containing %q", tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if tt.code == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `Basic realm="switchyard"`) {
				t.Fatalf("401 without a Basic challenge: %v", rec.Header())
			}
		})
	}
}

func TestStatusIsTheSourcesPicture(t *testing.T) {
	rec := get(t, testServer(false).Handler(), "/api/status", "admin", "s3cret")
	var st admin.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Master != "db1" || st.Epoch != 7 || len(st.Clusters) != 1 || len(st.Clusters[0].Backends) != 1 || st.Clusters[0].Backends[0].Role != "master" {
		t.Fatalf("%+v", st)
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", rec.Header())
	}
}

// The page works offline: no asset refers to another host (the SVG
// namespace is a name, not a fetch), and the CSP forbids loading any.
func TestPageHasNoExternalAssets(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+`)
	err := fs.WalkDir(assets, "page", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := assets.ReadFile(path)
		for _, m := range url.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := get(t, testServer(false).Handler(), "/", "admin", "s3cret")
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
}
