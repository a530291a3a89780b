package executor

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// stamped prefixes lines with PVE's time stamps, one second apart.
func stamped(lines ...string) []string {
	t := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = t.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05") + " " + l
	}
	return out
}

func TestParseProgress(t *testing.T) {
	tests := []struct {
		name        string
		lines       []string
		phase       string
		percent     float64
		transferred uint64
		total       uint64
		speed       float64
		elapsed     time.Duration
		disks       int
	}{
		{
			name:  "empty log",
			phase: PhaseStarting,
		},
		{
			name: "before any copying",
			lines: stamped("starting migration of VM 100 to node 'pve2' (10.0.0.2)",
				"starting VM 100 on remote node 'pve2'", "start remote tunnel"),
			phase: PhaseStarting, elapsed: 2 * time.Second,
		},
		{
			name: "memory only",
			lines: stamped("start migrate command to unix:/run/qemu-server/100.migrate",
				"migration active, transferred 1.0 GiB of 8.0 GiB VM-state, 1.0 GiB/s",
				"migration active, transferred 2.0 GiB of 8.0 GiB VM-state, 1.0 GiB/s"),
			phase: PhaseMemory, percent: 25, transferred: 2 * gib, total: 8 * gib, speed: gib, elapsed: 2 * time.Second,
		},
		{
			name: "two disks mirroring, aggregated",
			lines: stamped("found local disk 'local-zfs:vm-103-disk-0' (attached)",
				"found local disk 'local-zfs:vm-103-disk-1' (attached)",
				"drive-scsi0: start migration to nbd:unix:/run/qemu-server/103_nbd.migrate:exportname=drive-scsi0",
				"drive mirror is starting for drive-scsi0",
				"drive-scsi0: transferred 32.0 GiB of 32.0 GiB (100.00%) in 32s, ready",
				"drive-scsi1: transferred 8.0 GiB of 64.0 GiB (12.50%) in 8s"),
			phase: PhaseDisks, percent: 100 * 40.0 / 96, transferred: 40 * gib, total: 96 * gib,
			speed: float64(40*gib) / 40, elapsed: 5 * time.Second, disks: 2,
		},
		{
			name: "disks ready, memory copying: total includes the VM state",
			lines: stamped("drive-scsi0: transferred 16.0 GiB of 16.0 GiB (100.00%) in 16s, ready",
				"all 'mirror' jobs are ready",
				"migration active, transferred 4.0 GiB of 16.0 GiB VM-state, 512.0 MiB/s"),
			phase: PhaseMemory, percent: 100 * 20.0 / 32, transferred: 20 * gib, total: 32 * gib, speed: 512 * mib,
			elapsed: 2 * time.Second, disks: 1,
		},
		{
			name: "QEMU resends dirty blocks and pages: each part counts at most its total",
			lines: stamped("drive-scsi0: transferred 33.0 GiB of 32.0 GiB (100.00%) in 4m 3s, ready",
				"migration active, transferred 9.0 GiB of 8.0 GiB VM-state, 100.0 MiB/s"),
			phase: PhaseMemory, percent: 100, transferred: 40 * gib, total: 40 * gib, speed: 100 * mib,
			elapsed: time.Second, disks: 1,
		},
		{
			name: "completed migration, TASK OK",
			lines: stamped("migration active, transferred 4.0 GiB of 8.0 GiB VM-state, 1.0 GiB/s",
				"average migration speed: 1.0 GiB/s - downtime 53 ms",
				"migration completed, transferred 7.9 GiB VM-state",
				"migration status: completed",
				"start final cleanup",
				"migration finished successfully (duration 00:00:09)", "TASK OK"),
			phase: PhaseDone, percent: 100, transferred: 8 * gib, total: 8 * gib, speed: gib, elapsed: 6 * time.Second,
		},
		{
			name: "mirror- job names (newer qemu-server)",
			lines: []string{"mirror-scsi0: transferred 1.5 GiB of 3.0 GiB (50.00%) in 1m 30s",
				"mirror-virtio1: transferred 512.0 MiB of 1.0 GiB (50.00%) in 30s"},
			phase: PhaseDisks, percent: 50, transferred: 2 * gib, total: 4 * gib,
			speed: float64(2*gib) / 120, disks: 2,
		},
		{
			name: "PVE 6 byte-count forms",
			lines: []string{"drive-scsi0: transferred: 1073741824 bytes remaining: 3221225472 bytes total: 4294967296 bytes progression: 25.00 % busy: 1 ready: 0",
				"migration status: active (transferred 402653184, remaining 3892314112), total 4294967296)"},
			phase: PhaseMemory, percent: 100 * float64(gib+402653184) / float64(8*gib), transferred: gib + 402653184,
			total: 8 * gib, disks: 1,
		},
		{
			name: "failed migration keeps what was copied",
			lines: stamped("migration active, transferred 3.0 GiB of 8.0 GiB VM-state, 1.0 GiB/s",
				"migration status error: failed - Unable to write to socket: Broken pipe",
				"ERROR: online migrate failure - aborting",
				"TASK ERROR: migration aborted"),
			phase: PhaseDone, percent: 37.5, transferred: 3 * gib, total: 8 * gib, speed: gib, elapsed: 3 * time.Second,
		},
		{
			name: "container restart migration has no progress lines",
			lines: stamped("shutdown CT 207", "starting migration of CT 207 to node 'pve3' (10.0.0.3)",
				"start final cleanup", "start container on target node"),
			phase: PhaseStarting, elapsed: 3 * time.Second,
		},
		{
			name: "malformed lines are skipped",
			lines: []string{"migration active, transferred lots of 8.0 GiB VM-state, 1.0 GiB/s",
				"migration active, transferred 1.0 GiB of 8.0 XiB VM-state",
				"drive-scsi0: transferred 1.0 GiB of 2.0 GiB (abc%) in 1s",
				"drive-: transferred 1.0 GiB of 2.0 GiB (50.00%) in 1s",
				"drive-scsi0: transferred: x bytes remaining: 1 bytes total: 0 bytes progression: 0 % busy: 1 ready: 0",
				"2026-01-05 10:00:00migration active, transferred 1.0 GiB of 2.0 GiB VM-state, 1.0 GiB/s"},
			phase: PhaseStarting,
		},
		{
			name: "an impossible time stamp leaves the elapsed time unknown",
			lines: []string{"2026-13-45 99:99:99 migration active, transferred 1.0 GiB of 2.0 GiB VM-state, 1.0 GiB/s",
				"2026-01-05 10:00:09 migration active, transferred 1.5 GiB of 2.0 GiB VM-state, 1.0 GiB/s"},
			phase: PhaseMemory, percent: 75, transferred: gib + 512*mib, total: 2 * gib, speed: gib,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ParseProgress(tt.lines)
			if p.Phase != tt.phase || math.Abs(p.Percent-tt.percent) > 0.01 || p.TransferredBytes != tt.transferred ||
				p.TotalBytes != tt.total || math.Abs(p.BytesPerSecond-tt.speed) > 1 || p.Elapsed != tt.elapsed ||
				len(p.Disks) != tt.disks {
				t.Errorf("ParseProgress = phase %s, %.2f%%, %d of %d B, %.0f B/s, %s, %d disks\nwant phase %s, %.2f%%, %d of %d B, %.0f B/s, %s, %d disks",
					p.Phase, p.Percent, p.TransferredBytes, p.TotalBytes, p.BytesPerSecond, p.Elapsed, len(p.Disks),
					tt.phase, tt.percent, tt.transferred, tt.total, tt.speed, tt.elapsed, tt.disks)
			}
		})
	}
}

func TestParseProgressDiskDetails(t *testing.T) {
	p := ParseProgress([]string{
		"drive-scsi0: transferred 1.0 GiB of 4.0 GiB (25.00%) in 1s",
		"drive-scsi1: transferred 2.0 GiB of 2.0 GiB (100.00%) in 2s, ready",
		"drive-scsi0: transferred 2.0 GiB of 4.0 GiB (50.00%) in 1m 2s",
	})
	want := []DiskProgress{
		{Drive: "scsi0", TransferredBytes: 2 * gib, TotalBytes: 4 * gib, Percent: 50, Elapsed: 62 * time.Second},
		{Drive: "scsi1", TransferredBytes: 2 * gib, TotalBytes: 2 * gib, Percent: 100, Ready: true, Elapsed: 2 * time.Second},
	}
	if len(p.Disks) != len(want) {
		t.Fatalf("disks = %+v", p.Disks)
	}
	for i := range want {
		if p.Disks[i] != want[i] {
			t.Errorf("disk %d = %+v, want %+v", i, p.Disks[i], want[i])
		}
	}
}

// TestParseProgressRealLog reads a captured PVE task log answer.
func TestParseProgressRealLog(t *testing.T) {
	lines := readTaskLog(t, "testdata/task_log_running.json")
	p := ParseProgress(lines)
	transferredMiB := 229.4
	wantTr := uint64(transferredMiB * mib)
	if p.Phase != PhaseMemory || p.TransferredBytes != wantTr || p.TotalBytes != 2*gib ||
		math.Abs(p.BytesPerSecond-117.9*mib) > 1 || p.Elapsed != 5*time.Second {
		t.Errorf("ParseProgress = %+v", p)
	}
}

func readTaskLog(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var capture struct {
		Body struct {
			Data []struct {
				T string `json:"t"`
			} `json:"data"`
		} `json:"body"`
	}
	if err := json.Unmarshal(data, &capture); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range capture.Body.Data {
		out = append(out, l.T)
	}
	return out
}

func TestParseShortDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"9s": 9 * time.Second, "1m 5s": 65 * time.Second, "2h 0m 1s": 2*time.Hour + time.Second, "": 0, "xs": 0,
	} {
		if got := parseShortDuration(in); got != want {
			t.Errorf("parseShortDuration(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLastErrorLine(t *testing.T) {
	lines := stamped("migration status error: failed - Unable to write to socket: Broken pipe",
		"ERROR: online migrate failure - aborting",
		"ERROR: migration aborted (duration 00:00:07): online migrate failure - aborting")
	lines = append(lines, "TASK ERROR: migration aborted")
	if got := lastErrorLine(lines); got != "ERROR: migration aborted (duration 00:00:07): online migrate failure - aborting" {
		t.Errorf("lastErrorLine = %q", got)
	}
	if got := lastErrorLine([]string{"TASK OK"}); got != "" {
		t.Errorf("lastErrorLine without errors = %q", got)
	}
}

func FuzzParseProgress(f *testing.F) {
	for _, s := range []string{
		"2026-01-05 10:00:00 migration active, transferred 229.4 MiB of 2.0 GiB VM-state, 117.9 MiB/s",
		"drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 9s",
		"mirror-scsi1: transferred 33.0 GiB of 32.0 GiB (100.00%) in 4m 3s, ready",
		"drive-scsi0: transferred: 1073741824 bytes remaining: 3221225472 bytes total: 4294967296 bytes progression: 25.00 % busy: 1 ready: 0",
		"migration status: active (transferred 402653184, remaining 3892314112), total 4294967296)",
		"migration completed, transferred 7.9 GiB VM-state",
		"average migration speed: 1.0 GiB/s - downtime 53 ms",
		"TASK OK",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, log string) {
		p := ParseProgress(strings.Split(log, "\n"))
		if p.Percent < 0 || p.Percent > 100 || math.IsNaN(p.Percent) {
			t.Errorf("percent %v out of range", p.Percent)
		}
		if p.TransferredBytes > p.TotalBytes {
			t.Errorf("transferred %d > total %d", p.TransferredBytes, p.TotalBytes)
		}
		if p.BytesPerSecond < 0 || math.IsNaN(p.BytesPerSecond) || math.IsInf(p.BytesPerSecond, 0) {
			t.Errorf("speed %v", p.BytesPerSecond)
		}
		for _, d := range p.Disks {
			if d.Percent < 0 || d.Percent > 100 {
				t.Errorf("disk %s percent %v", d.Drive, d.Percent)
			}
		}
	})
}

// BenchmarkParseProgress parses the log of a live migration with two mirrored disks: 600 progress lines, as
// Active reads it on every poll.
func BenchmarkParseProgress(b *testing.B) {
	var lines []string
	for _, d := range []string{"scsi0", "scsi1"} {
		for i := 1; i <= 200; i++ {
			lines = append(lines, "2026-01-05 10:00:00 drive-"+d+": transferred "+gibText(float64(i)*0.16)+
				" of 32.0 GiB (50.00%) in 3m 20s")
		}
	}
	for i := 1; i <= 200; i++ {
		lines = append(lines, "2026-01-05 10:05:00 migration active, transferred "+gibText(float64(i)*0.04)+
			" of 8.0 GiB VM-state, 1.0 GiB/s")
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := ParseProgress(lines); p.TotalBytes == 0 {
			b.Fatal("nothing parsed")
		}
	}
}

func gibText(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " GiB" }
