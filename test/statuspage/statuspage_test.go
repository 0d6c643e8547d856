// Package statuspage_test loads the status page in a real browser
// (Debian's headless Chromium, driven through chromedriver's WebDriver
// API), makes a switchover and watches the page show the new master. The
// page's screenshot is kept in test-artifacts/ at the repository root.
package statuspage_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, 2, 17, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1s\n"}, &env, &proxy))
}

// webDriver is a chromedriver process and one browser session in it.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:port/session/<id>
	process *exec.Cmd
}

func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	ports, err := harness.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	root := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	cmd := exec.Command("chromedriver", fmt.Sprintf("--port=%d", ports[0]))
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromedriver (Debian package chromium-driver, installed by make deps): %v", err)
	}
	d := &webDriver{t: t, process: cmd}
	t.Cleanup(d.close)
	harness.WaitFor(t, "chromedriver to listen", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	var created struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	d.call(root+"/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": "/usr/bin/chromium",
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1300,1150"}},
	}}}, &created)
	if created.Value.SessionID == "" {
		t.Fatal("chromedriver gave no session id")
	}
	d.base = root + "/session/" + created.Value.SessionID
	return d
}

// call POSTs body (GET when nil) and decodes the answer into out.
func (d *webDriver) call(url string, body any, out any) {
	d.t.Helper()
	method, reader := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, _ := json.Marshal(body)
		method, reader = http.MethodPost, bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, reader)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("webdriver %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("webdriver %s: %s %s", url, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			d.t.Fatalf("webdriver %s: %v", url, err)
		}
	}
}

// script runs JavaScript in the page and returns its string result.
func (d *webDriver) script(js string) string {
	d.t.Helper()
	var res struct {
		Value any `json:"value"`
	}
	d.call(d.base+"/execute/sync", map[string]any{"script": js, "args": []any{}}, &res)
	if s, ok := res.Value.(string); ok {
		return s
	}
	return fmt.Sprint(res.Value)
}

func (d *webDriver) close() {
	if d.base != "" {
		req, _ := http.NewRequest(http.MethodDelete, d.base, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	_ = d.process.Process.Kill()
	_ = d.process.Wait()
}

func artifactDir(t *testing.T) string {
	_, f, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(f), "..", "..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

const (
	masterJS = `return document.getElementById("master").textContent`
	nodesJS  = `return Array.from(document.querySelectorAll("#topology g.node")).map(g => g.dataset.name + "=" + g.dataset.role).sort().join(" ")`
	edgesJS  = `return Array.from(document.querySelectorAll("#topology path.edge")).map(e => e.dataset.from + ">" + e.dataset.to).sort().join(" ")`
	changeJS = `const c = document.querySelector("#timeline .change"); return c ? c.dataset.kind + ">" + c.dataset.newMaster : ""`
)

func TestStatusPageFollowsASwitchover(t *testing.T) {
	adm := proxy.Admin(t)
	old := harness.MasterOf(t, adm)
	b := startBrowser(t)
	// The browser sends the admin account's credentials with every request
	// (what a user types in the browser's login prompt).
	b.call(b.base+"/goog/cdp/execute", map[string]any{"cmd": "Network.enable", "params": map[string]any{}}, nil)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin"))
	b.call(b.base+"/goog/cdp/execute", map[string]any{"cmd": "Network.setExtraHTTPHeaders",
		"params": map[string]any{"headers": map[string]string{"Authorization": auth}}}, nil)
	b.call(b.base+"/url", map[string]any{"url": "http://" + proxy.HTTPAddr + "/"}, nil)

	harness.WaitFor(t, "the page to show the master", 10*time.Second, func() bool { return b.script(masterJS) == old })
	harness.WaitFor(t, "the page to draw three servers and two replication arrows", 10*time.Second, func() bool {
		return strings.Count(b.script(nodesJS), "=") == 3 && strings.Count(b.script(edgesJS), ">") == 2
	})
	if nodes := b.script(nodesJS); !strings.Contains(nodes, old+"=master") {
		t.Fatalf("nodes before: %s", nodes)
	}

	// A client session appears in the sessions table.
	db := proxy.Open(t, "", "")
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the session in the table", 10*time.Second, func() bool {
		return b.script(`return String(document.querySelectorAll("#sessions tbody tr").length)`) != "0"
	})

	if _, err := adm.Exec("SWITCHOVER"); err != nil {
		t.Fatal(err)
	}
	neu := harness.MasterOf(t, adm)
	if neu == old {
		t.Fatalf("switchover left %s master", old)
	}
	took := harness.WaitFor(t, "the page to show the new master", 10*time.Second, func() bool {
		return b.script(masterJS) == neu && strings.Contains(b.script(nodesJS), neu+"=master") &&
			strings.Contains(b.script(nodesJS), old+"=replica") && b.script(changeJS) == "switchover>"+neu
	})
	t.Logf("the page showed %s as master %v after the switchover returned", neu, took)
	harness.WaitFor(t, "arrows from the new master", 10*time.Second, func() bool {
		edges := b.script(edgesJS)
		return strings.Count(edges, neu+">") == 2
	})

	var shot struct {
		Value string `json:"value"`
	}
	b.call(b.base+"/screenshot", nil, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Value)
	if err != nil || len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	path := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
