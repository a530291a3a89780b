package exporter

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// updateOnce runs one Collector's Update as a prometheus.Collector and keeps its error.
type updateOnce struct {
	c    Collector
	inv  *pve.Inventory
	drop map[*prometheus.Desc]bool
	err  error
}

func (u *updateOnce) Describe(chan<- *prometheus.Desc) {}
func (u *updateOnce) Collect(ch chan<- prometheus.Metric) {
	u.err = u.c.Update(u.inv, &SeriesWriter{ch: ch, drop: u.drop})
}

// compatLintExceptions are promlint findings on families whose name prometheus-pve-exporter fixed long ago;
// renaming them would break the dashboards this exporter is a drop-in for.
var compatLintExceptions = map[string]string{
	"pve_not_backed_up_total": `non-counter metrics should not have "_total" suffix`,
}

func TestCollectorsGolden(t *testing.T) {
	tests := []struct {
		name    string
		c       Collector
		inv     *pve.Inventory
		golden  string
		wantErr string // substring of the collector's error; "" for success
	}{
		{"cluster", clusterCollector{}, representativeInventory(), "cluster.prom", ""},
		{"cluster standalone", clusterCollector{}, inventory(withVersion("8.4.1", "8.4", "2a5fa54a"), withNodes(node("solo", local()))), "cluster_standalone.prom", ""},
		{"node", nodeCollector{}, representativeInventory(), "node.prom", ""},
		{"node partial", nodeCollector{}, inventory(withNodes(node("pve1"), node("pve2", statusUnread())),
			withGuests(guest(100), guest(101, on("pve2"), ct(), config(0, 2*gib)), guest(102, template()), guest(103, stopped())),
			withPartial("/nodes/pve2/status", "pve2", "500 Internal Server Error")), "node_partial.prom", "/nodes/pve2/status: 500"},
		{"guest", guestCollector{}, representativeInventory(), "guest.prom", ""},
		{"storage", storageCollector{}, representativeInventory(), "storage.prom", ""},
		{"placement", placementCollector{}, representativeInventory(), "placement.prom", ""},
		{"tasks", tasksCollector{}, representativeInventory(), "tasks.prom", ""},
		{"backup-info", backupInfoCollector{}, representativeInventory(), "backup_info.prom", ""},
		{"backup-info failed", backupInfoCollector{}, inventory(withCluster("pvec", true, 1, 1),
			withPartial("/cluster/backup-info/not-backed-up", "", "403 Permission check failed")), "empty.prom", "403 Permission check failed"},
		{"qdevice", qdeviceCollector{}, representativeInventory(), "qdevice.prom", ""},
		{"qdevice not connected", qdeviceCollector{}, inventory(withCluster("pvec", true, 2, 3),
			withQDevice(pve.QDevice{Model: "Net", Algorithm: "LMS", QNetdHost: "qnetd.example:5403", State: "Connect failed"})), "qdevice_disconnected.prom", ""},
		{"qdevice none configured", qdeviceCollector{}, inventory(withCluster("pvec", true, 3, 7)), "empty.prom", ""},
		// prometheus-pve-exporter emits nothing without a cluster entry in /cluster/status, even with an answer.
		{"qdevice standalone", qdeviceCollector{}, inventory(withNodes(node("solo", local())), withQDevice(pve.QDevice{Model: "Net", State: "Connected"})), "empty.prom", ""},
		{"qdevice failed", qdeviceCollector{}, inventory(withCluster("pvec", true, 3, 7),
			withPartial("/cluster/config/qdevice", "", "403 Permission check failed (/, Sys.Audit)")), "empty.prom", "/cluster/config/qdevice: 403 Permission check failed"},
		{"config", configCollector{}, representativeInventory(), "config.prom", ""},
		{"replication", replicationCollector{}, representativeInventory(), "replication.prom", ""},
		{"subscription", subscriptionCollector{}, representativeInventory(), "subscription.prom", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &updateOnce{c: tt.c, inv: tt.inv}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				reg := prometheus.NewPedanticRegistry()
				reg.MustRegister(u)
				out := exposition(t, reg)
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if err := testutil.CollectAndCompare(u, bytes.NewReader(want)); err != nil {
				t.Errorf("exposition differs from %s:\n%v", path, err)
			}
			checkErr(t, u.err, tt.wantErr)
			if tt.wantErr != "" && !errors.Is(u.err, errPartial) {
				t.Errorf("error %q does not wrap errPartial", u.err)
			}
			assertLintClean(t)(testutil.CollectAndLint(u))
		})
	}
}

// exposition renders everything g gathers in the text format.
func exposition(t testing.TB, g prometheus.Gatherer) []byte {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encoding %s: %v", mf.GetName(), err)
		}
	}
	return b.Bytes()
}

// assertLintClean fails the test on every promlint finding but the compatibility exceptions; it is called
// as assertLintClean(t)(testutil.XxxAndLint(...)).
func assertLintClean(t *testing.T) func([]promlint.Problem, error) {
	return func(problems []promlint.Problem, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if compatLintExceptions[p.Metric] != p.Text {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		}
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("error = nil, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error = %q, want one containing %q", err, want)
	}
}

// TestGoldenPromtool lints every golden exposition with promtool check metrics, as Prometheus would.
func TestGoldenPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found in PATH: install it (Debian: apt-get install prometheus) to lint the golden files")
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.prom"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files found: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(data)
		out, _ := cmd.CombinedOutput() // exit status 3 on lint findings; the findings are judged below
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" {
				continue
			}
			metric, text, _ := strings.Cut(line, " ")
			if compatLintExceptions[metric] == text {
				continue
			}
			t.Errorf("%s: promtool: %s", f, line)
		}
	}
}

func TestPartialError(t *testing.T) {
	inv := inventory(
		withPartial("/nodes/pve2/status", "pve2", "timeout"),
		withPartial("/nodes/pve3/qemu/100/config", "pve3", "500"),
		withPartial("/cluster/tasks", "", "403"),
	)
	tests := []struct {
		exact, nodeRelative []string
		want                string
	}{
		{nil, []string{"status"}, "/nodes/pve2/status: timeout"},
		{nil, []string{"qemu/", "lxc/"}, "/nodes/pve3/qemu/100/config: 500"},
		{[]string{"/cluster/tasks"}, nil, "/cluster/tasks: 403"},
		{[]string{"/cluster/resources"}, []string{"storage"}, ""},
		{[]string{"/cluster"}, nil, "/cluster/tasks: 403"},
	}
	for _, tt := range tests {
		err := partialError(inv, endpointMatcher(tt.exact, tt.nodeRelative))
		if tt.want == "" {
			if err != nil {
				t.Errorf("%v %v: error = %v, want nil", tt.exact, tt.nodeRelative, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errPartial) {
			t.Errorf("%v %v: error = %v, want errPartial containing %q", tt.exact, tt.nodeRelative, err, tt.want)
		}
	}
}

func TestCollectorsReportOnlyTheirOwnPartialData(t *testing.T) {
	tests := []struct {
		endpoint string
		failing  []string // collectors whose Update must return an error
	}{
		{"/nodes/pve1/qemu/100/status/current", []string{"guest"}},
		{"/nodes/pve1/qemu", []string{"guest"}}, // the guest list: guest PSI
		{"/nodes/pve1/lxc", []string{"guest"}},
		{"/nodes/pve1/qemu/100/config", []string{"guest", "placement", "config"}},
		{"/nodes/pve1/lxc/101/config", []string{"guest", "placement", "config"}},
		{"/nodes/pve2/status", []string{"node"}},
		{"/nodes/pve2/rrddata?timeframe=hour", []string{"node"}},
		{"/nodes/pve2/storage", []string{"storage", "placement"}},
		{"/cluster/resources", []string{"node", "guest", "storage", "placement"}},
		{"/cluster/status", []string{"cluster", "node", "qdevice"}}, // qdevice: the cluster name is its id
		{"/cluster/config/qdevice", []string{"qdevice"}},
		{"/version", []string{"cluster"}},
		{"/cluster/tasks", []string{"tasks"}},
		{"/cluster/ha/status/current", []string{"placement"}},
		{"/cluster/backup-info/not-backed-up", []string{"backup-info"}},
		{"/nodes/pve1/replication", []string{"replication"}},
		{"/nodes/pve1/subscription", []string{"subscription"}},
	}
	for _, tt := range tests {
		inv := representativeInventory()
		inv.Partial = []pve.FetchError{{Endpoint: tt.endpoint, Err: errors.New("boom")}}
		var failing []string
		for _, spec := range Collectors() {
			if err := spec.New().Update(inv, &SeriesWriter{text: newExposition()}); err != nil {
				failing = append(failing, spec.Name)
			}
		}
		slices.Sort(failing)
		want := slices.Sorted(slices.Values(tt.failing))
		if !slices.Equal(failing, want) {
			t.Errorf("%s failed: collectors %v report an error, want %v", tt.endpoint, failing, want)
		}
	}
}

func TestTaskOutcome(t *testing.T) {
	for status, want := range map[string]string{
		"OK": "ok", "WARNINGS: 2": "warning", "migration aborted": "error", "unexpected status": "error",
	} {
		if got := taskOutcome(status); got != want {
			t.Errorf("taskOutcome(%q) = %q, want %q", status, got, want)
		}
	}
}

func TestAllocations(t *testing.T) {
	guests := []pve.Guest{
		guest(100, config(4, 8*gib)),              // config wins over maxcpu/maxmem
		guest(101, ct(), config(0, 2*gib)),        // LXC without a cores limit: maxcpu
		guest(102),                                // no config: maxcpu/maxmem
		guest(103, stopped(), config(8, 16*gib)),  // not running
		guest(104, template(), config(8, 16*gib)), // template
		guest(105, on("pve2"), config(1, 1*gib)),  // other node
	}
	vcpus, mem := allocations(guests)
	if got, want := vcpus["pve1"], 4.0+2+2; got != want {
		t.Errorf("pve1 vcpus = %v, want %v", got, want)
	}
	if got, want := mem["pve1"], float64(8*gib+2*gib+4*gib); got != want {
		t.Errorf("pve1 memory = %v, want %v", got, want)
	}
	if vcpus["pve2"] != 1 || mem["pve2"] != gib {
		t.Errorf("pve2 = %v vcpus, %v bytes, want 1, 1 GiB", vcpus["pve2"], mem["pve2"])
	}
}

func TestContentLabelSorts(t *testing.T) {
	in := []string{"rootdir", "images", "backup"}
	if got := contentLabel(in); got != "backup,images,rootdir" {
		t.Errorf("contentLabel = %q", got)
	}
	if in[0] != "rootdir" {
		t.Errorf("contentLabel sorted its input in place: %v", in)
	}
}

func TestSeriesWriterDropsFamilies(t *testing.T) {
	inv := representativeInventory()
	u := &updateOnce{c: guestCollector{}, inv: inv, drop: map[*prometheus.Desc]bool{upDesc: true}}
	if n := testutil.CollectAndCount(u, "pve_up"); n != 0 {
		t.Errorf("pve_up series = %d, want 0 after dropping the status group", n)
	}
	if n := testutil.CollectAndCount(u, "pve_guest_info"); n != len(inv.Guests) {
		t.Errorf("pve_guest_info series = %d, want %d", n, len(inv.Guests))
	}
}

// The replication info names the guest by the type PVE's answer gives (vmtype), else by the inventory's guest,
// else as a VM.
func TestReplicationGuestLabel(t *testing.T) {
	inv := inventory(withNodes(node("pve1")), withGuests(guest(101, ct())), withReplication(
		pve.ReplicationJob{ID: "101-0", Guest: 101, Source: "pve1", Target: "pve2"},
		pve.ReplicationJob{ID: "555-0", Guest: 555, GuestType: pve.TypeLXC, Source: "pve1", Target: "pve2"},
		pve.ReplicationJob{ID: "556-0", Guest: 556, Source: "pve1", Target: "pve2"},
	))
	u := &updateOnce{c: replicationCollector{}, inv: inv}
	want := `
# HELP pve_replication_info Proxmox vm replication info
# TYPE pve_replication_info gauge
pve_replication_info{guest="lxc/101",id="101-0",source="node/pve1",target="node/pve2",type="local"} 1
pve_replication_info{guest="lxc/555",id="555-0",source="node/pve1",target="node/pve2",type="local"} 1
pve_replication_info{guest="qemu/556",id="556-0",source="node/pve1",target="node/pve2",type="local"} 1
`
	if err := testutil.CollectAndCompare(u, strings.NewReader(want), "pve_replication_info"); err != nil {
		t.Error(err)
	}
}
