package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// dashboardSnapshot is what the page shows, read from its DOM.
type dashboardSnapshot struct {
	Leader      string `json:"leader"`
	Banner      string `json:"banner"`
	Consistency string `json:"consistency"`
	Zones       []string
	Members     []struct {
		ID, Zone, Role, Health string
		Applied, Lag           string
	} `json:"members"`
	Services []struct {
		Name, Users, Records string
	} `json:"services"`
	Nodes []struct {
		URL, Load, Capacity, Available string
		Downed, Backoff                bool
		Badges                         string
		Fill                           string
	} `json:"nodes"`
	AllocationRate string `json:"allocationRate"`
	LoginRate      string `json:"loginRate"`
	Quorum         string `json:"quorum"`
	CanLose        string `json:"canLose"`
	Axis           string `json:"axis"`
}

// snapshotJS reads the dashboard's DOM (not the page's variables): what an
// operator would see.
const snapshotJS = `(() => {
  const q = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const b = document.getElementById('banner');
  const rates = document.getElementById('rates');
  return {
    leader: document.getElementById('leader').textContent,
    banner: b.hidden ? '' : b.textContent,
    consistency: document.getElementById('consistency').dataset.level || '',
    Zones: q('.zone').map((z) => z.dataset.zone),
    members: q('tr.member').map((r) => ({ID: r.dataset.memberId, Zone: r.closest('.zone').dataset.zone,
      Role: r.dataset.role, Health: r.dataset.health, Applied: r.dataset.applied, Lag: r.dataset.lag})),
    services: q('.service').map((s) => ({Name: s.dataset.service,
      Users: s.querySelector('.users').textContent, Records: s.querySelector('.records').textContent})),
    nodes: q('.node').map((n) => ({URL: n.dataset.node, Load: n.dataset.load, Capacity: n.dataset.capacity,
      Available: n.dataset.available, Downed: n.dataset.downed === 'true', Backoff: n.dataset.backoff === 'true',
      Badges: q('.badge', n).map((x) => x.textContent).join(' '), Fill: n.querySelector('.fill').style.width})),
    allocationRate: rates.dataset.allocationRate || '',
    loginRate: rates.dataset.loginRate || '',
    quorum: document.getElementById('quorum').textContent,
    canLose: document.getElementById('quorum').dataset.canLose || '',
    axis: q('#rates-axis span').map((x) => x.textContent).join('|'),
  };
})()`

// TestDashboardInBrowser loads /ui/ from a follower of a real three-member
// cluster in headless Chromium and checks what it shows, then kills the
// leader and a second member and watches the page follow.
// WIMMS_SCREENSHOTS=1 writes the screenshots of docs/img/.
func TestDashboardInBrowser(t *testing.T) {
	chrome := testutil.Tool(t, "chromium", "chromium", "chromium-browser", "google-chrome")
	const token = "dashboard-secret"
	auth := []string{"Authorization", "Bearer " + token}

	zones := []string{"zone-a", "zone-b", "zone-c"}
	ms := launchMembers(t, 3, membersSpec{
		zones: zones,
		flags: []string{"--api-token", token},
		// Joined by URL, as an operator copies it from a browser.
		joinVia:    func(first *member) string { return "http://" + first.HTTPAddr + "/" },
		firstReady: 30 * time.Second,
	})
	view := func(m *member) (wire.ClusterStatus, error) { return viewOf(m, client.WithToken(token)) }
	leaderID := waitLeader(t, 60*time.Second, "three members agree on a leader", ms, view, func(m *member, v wire.ClusterStatus) error {
		if len(v.Members) != 3 {
			return fmt.Errorf("%s sees %d members", m.ID, len(v.Members))
		}
		return nil
	})
	leader := byID(ms, leaderID)
	var page, other *member // page: the follower that serves the dashboard
	for _, m := range ms {
		if m == leader {
			continue
		}
		if page == nil {
			page = m
		} else {
			other = m
		}
	}

	const svc = "sync-1.5"
	expect(t, call(t, "PUT", page.url("/v1/services/"+svc), map[string]any{"pattern": "{node}/1.5/{uid}"}, auth...), 201, "service")
	expect(t, call(t, "POST", page.url("/v1/services/"+svc+"/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 10}, auth...), 201, "n1")
	expect(t, call(t, "POST", page.url("/v1/services/"+svc+"/nodes"), map[string]any{"node": "https://n2.example.com", "capacity": 5, "downed": true}, auth...), 201, "n2")
	expect(t, call(t, "POST", page.url("/v1/services/"+svc+"/nodes"), map[string]any{"node": "https://n3.example.com", "capacity": 8, "backoff": true}, auth...), 201, "n3")
	expect(t, call(t, "PATCH", page.url("/v1/services/"+svc+"/nodes/3"), map[string]any{"current_load": 6}, auth...), 200, "n3 load")
	allocateN := func(from, to int) {
		for i := from; i < to; i++ {
			expect(t, call(t, "POST", page.url("/v1/services/"+svc+"/users"), map[string]any{"email": fmt.Sprintf("u%d@example.com", i)}, auth...), 201, "allocate")
		}
	}
	allocateN(0, 4)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	defer cancelTimeout()

	snapshot := func() dashboardSnapshot {
		var s dashboardSnapshot
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](snapshotJS))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("snapshot %s: %v", raw, err)
		}
		return s
	}
	// waitFor waits until the JavaScript condition on the snapshot `s`
	// holds, with a deadline; it fails with what the page shows.
	waitFor := func(what, cond string, timeout time.Duration) dashboardSnapshot {
		t.Helper()
		expr := fmt.Sprintf("(() => { const s = %s; return Boolean(%s); })()", snapshotJS, cond)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(200*time.Millisecond),
			chromedp.WithPollingTimeout(timeout))); err != nil {
			t.Fatalf("%s: %v; the page shows %+v", what, err, snapshot())
		}
		return snapshot()
	}
	screenshot := func(name string) {
		if os.Getenv("WIMMS_SCREENSHOTS") == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join("..", "..", "docs", "img", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(page.url("/ui/?refresh=1000"))); err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	waitFor("without the token the page asks for it", `s.banner.includes('token')`, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-save"))); err != nil {
		t.Fatalf("entering the token: %v", err)
	}

	s := waitFor("the cluster and the nodes appear",
		`s.members.length === 3 && s.nodes.length === 3 && s.leader === '`+leaderID+`' && s.banner === '' &&
		 s.members.every((m) => m.Applied !== '') && s.nodes.some((n) => n.Load === '4')`, 60*time.Second)
	if strings.Join(s.Zones, ",") != "zone-a,zone-b,zone-c" {
		t.Errorf("zones %v, want one group per zone", s.Zones)
	}
	for _, m := range s.Members {
		wantZone := zones[int(m.ID[1]-'1')]
		wantRole := "follower"
		if m.ID == leaderID {
			wantRole = "leader"
		}
		if m.Zone != wantZone || m.Role != wantRole || m.Health != "alive" || m.Lag == "" {
			t.Errorf("member %+v, want zone %s, role %s, alive, with a lag", m, wantZone, wantRole)
		}
	}
	if s.Consistency != "default" {
		t.Errorf("consistency %q, want default while a leader is known", s.Consistency)
	}
	if s.CanLose != "1" || !strings.Contains(s.Quorum, "can lose 1 more member") {
		t.Errorf("quorum line %q (can lose %q), want one more member with three alive", s.Quorum, s.CanLose)
	}
	if len(s.Services) != 1 || s.Services[0].Name != svc || s.Services[0].Users != "4" || s.Services[0].Records != "4" {
		t.Errorf("services %+v, want %s with 4 users and 4 records", s.Services, svc)
	}
	wantNodes := map[string]struct {
		load, capacity  string
		downed, backoff bool
		badge, fill     string
	}{
		"https://n1.example.com": {"4", "10", false, false, "", "40%"},
		"https://n2.example.com": {"0", "5", true, false, "DOWNED", "0%"},
		"https://n3.example.com": {"6", "8", false, true, "BACKOFF", "75%"},
	}
	for _, n := range s.Nodes {
		w, ok := wantNodes[n.URL]
		if !ok {
			t.Errorf("unexpected node %+v", n)
			continue
		}
		if n.Load != w.load || n.Capacity != w.capacity || n.Downed != w.downed || n.Backoff != w.backoff ||
			!strings.Contains(n.Badges, w.badge) || n.Fill != w.fill {
			t.Errorf("node %s shows %+v, want load %s of %s, downed %v, backoff %v, badge %q, bar %s",
				n.URL, n, w.load, w.capacity, w.downed, w.backoff, w.badge, w.fill)
		}
		if !w.downed && strings.Contains(n.Badges, "DOWNED") || !w.backoff && strings.Contains(n.Badges, "BACKOFF") {
			t.Errorf("node %s is marked %q", n.URL, n.Badges)
		}
	}

	// New allocations and logins move the bar and show in the rate chart.
	allocateN(4, 7)
	// The logins go to another member than the page's: the page shows the
	// cluster's rate, not its own member's.
	for i := 0; i < 3; i++ {
		expect(t, call(t, "POST", other.url(fmt.Sprintf("/v1/services/%s/users/u%d@example.com/login", svc, i)),
			map[string]any{"generation": 1, "client_state": ""}, auth...), 200, "login")
	}
	s = waitFor("the bar and the rates follow new allocations and logins",
		`s.nodes.some((n) => n.URL === 'https://n1.example.com' && n.Load === '7') &&
		 Number(s.allocationRate) > 0 && Number(s.loginRate) > 0`, 30*time.Second)
	if s.Services[0].Users != "7" {
		t.Errorf("users %q after 7 allocations", s.Services[0].Users)
	}
	if axis := strings.Split(s.Axis, "|"); len(axis) != 3 || axis[0] == "" || axis[2] == "" {
		t.Errorf("the rate chart has no time axis: %q", s.Axis)
	}
	screenshot("dashboard.png")

	// Killing the leader: another member leads and the old one is down.
	leader.kill9()
	s = waitFor("the page shows the leader killed",
		`s.leader !== '' && s.leader !== 'none' && s.leader !== '`+leaderID+`' &&
		 s.members.some((m) => m.ID === '`+leaderID+`' && m.Health === 'down' && m.Role !== 'leader') && s.canLose === '0'`, 90*time.Second)
	screenshot("dashboard-leader-killed.png")

	// And with a second member gone the page's member has no leader: it says
	// so and falls back to stale reads of what it has.
	other.kill9()
	s = waitFor("the page shows that its member has no leader",
		`s.leader === 'none' && s.banner.includes('no leader') && s.consistency === 'stale' && s.nodes.length === 3 &&
		 s.canLose === '-1' && s.quorum.includes('No quorum')`, 90*time.Second)
	if s.Services[0].Users != "7" {
		t.Errorf("stale view lost data: %+v", s.Services)
	}
	screenshot("dashboard-no-leader.png")
}
