package executor

import (
	"strconv"
	"strings"
	"time"
)

// Progress is how far a migration is, read from its task log.
type Progress struct {
	// Percent is 0..100 over everything to copy (local disks and memory).
	Percent float64 `json:"percent"`
	// TransferredBytes and TotalBytes sum the disk mirrors and the VM state. QEMU may send more than the total
	// (dirty pages and blocks are sent again); each part counts at most its total.
	TransferredBytes uint64 `json:"transferred_bytes"`
	TotalBytes       uint64 `json:"total_bytes"`
	// BytesPerSecond is the last speed QEMU reported, else the mirrors' average so far (0 when unknown).
	BytesPerSecond float64 `json:"bytes_per_second"`
	// Elapsed is the time between the log's first and last time stamps; Active replaces it by the time since
	// the task started.
	Elapsed time.Duration `json:"elapsed"`
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// Disks has one entry per mirrored drive, in log order.
	Disks []DiskProgress `json:"disks,omitempty"`
	// Memory is the VM state's progress (zero when the log has not reached it).
	Memory MemoryProgress `json:"memory"`
}

// Migration phases as the log shows them.
const (
	PhaseStarting  = "starting"  // nothing copied yet
	PhaseDisks     = "disks"     // local disks are mirrored
	PhaseMemory    = "memory"    // the VM state is copied
	PhaseFinishing = "finishing" // copying completed, cleanup runs
	PhaseDone      = "done"      // the log ended with a TASK line
)

// DiskProgress is one drive mirror's progress.
type DiskProgress struct {
	Drive            string  `json:"drive"`
	TransferredBytes uint64  `json:"transferred_bytes"`
	TotalBytes       uint64  `json:"total_bytes"`
	Percent          float64 `json:"percent"`
	Ready            bool    `json:"ready"`
	// Elapsed is the mirror's own "in 1m 5s".
	Elapsed time.Duration `json:"elapsed"`
}

// MemoryProgress is the VM state copy's progress.
type MemoryProgress struct {
	TransferredBytes uint64 `json:"transferred_bytes"`
	TotalBytes       uint64 `json:"total_bytes"`
	Completed        bool   `json:"completed"`
}

// ParseProgress reads a migration task log (lines in order, with or without PVE's "2006-01-02 15:04:05 "
// time stamps) into its progress. It understands qemu-server's live-migration lines of PVE 7 to 9
// ("migration active, transferred X of Y VM-state, S/s"; "drive-scsi0: transferred A of B (P%) in T[, ready]",
// also as "mirror-scsi0:") and the byte-count forms of older releases. Lines it does not know are skipped.
func ParseProgress(lines []string) Progress {
	var p Progress
	var first, last string // time stamps are parsed once, at the end
	var memSpeed float64
	p.Phase = PhaseStarting
	for _, line := range lines {
		ts, text := cutTimestamp(line)
		if ts != "" {
			if first == "" {
				first = ts
			}
			last = ts
		}
		switch {
		case strings.HasPrefix(text, "TASK "):
			p.Phase = PhaseDone
		case strings.HasPrefix(text, "migration active, transferred "):
			if tr, total, speed, ok := parseMemoryActive(text); ok {
				p.Memory.TransferredBytes, p.Memory.TotalBytes = tr, total
				memSpeed = speed
				p.Phase = PhaseMemory
			}
		case strings.HasPrefix(text, "migration status: active (transferred "):
			if tr, total, ok := parseMemoryStatusBytes(text); ok {
				p.Memory.TransferredBytes, p.Memory.TotalBytes = tr, total
				p.Phase = PhaseMemory
			}
		case strings.HasPrefix(text, "migration completed, transferred "),
			text == "migration status: completed":
			p.Memory.Completed = true
			if p.Memory.TotalBytes > 0 {
				p.Memory.TransferredBytes = p.Memory.TotalBytes
			}
			p.Phase = PhaseFinishing
		case strings.HasPrefix(text, "average migration speed: "):
			if s, ok := parseSpeed(strings.TrimPrefix(text, "average migration speed: ")); ok {
				memSpeed = s
			}
		default:
			if d, ok := parseDriveLine(text); ok {
				p.Disks = upsertDisk(p.Disks, d)
				if p.Phase == PhaseStarting {
					p.Phase = PhaseDisks
				}
			}
		}
	}
	if first != "" {
		f, err1 := time.Parse(timestampLayout, first)
		l, err2 := time.Parse(timestampLayout, last)
		if err1 == nil && err2 == nil {
			p.Elapsed = max(l.Sub(f), 0)
		}
	}
	p.aggregate(memSpeed)
	return p
}

func (p *Progress) aggregate(memSpeed float64) {
	var diskBytes uint64
	var diskTime time.Duration
	for _, d := range p.Disks {
		p.TotalBytes += d.TotalBytes
		p.TransferredBytes += min(d.TransferredBytes, d.TotalBytes)
		diskBytes += d.TransferredBytes
		diskTime += d.Elapsed
	}
	p.TotalBytes += p.Memory.TotalBytes
	p.TransferredBytes += min(p.Memory.TransferredBytes, p.Memory.TotalBytes)
	if p.TotalBytes > 0 {
		p.Percent = 100 * float64(p.TransferredBytes) / float64(p.TotalBytes)
	}
	switch {
	case memSpeed > 0:
		p.BytesPerSecond = memSpeed
	case diskTime > 0:
		p.BytesPerSecond = float64(diskBytes) / diskTime.Seconds()
	}
}

func upsertDisk(disks []DiskProgress, d DiskProgress) []DiskProgress {
	for i := range disks {
		if disks[i].Drive == d.Drive {
			disks[i] = d
			return disks
		}
	}
	return append(disks, d)
}

// timestampLayout is how PVE stamps task log lines.
const timestampLayout = "2006-01-02 15:04:05"

// cutTimestamp splits PVE's "2006-01-02 15:04:05 " prefix off a line; ts is "" when there is none. The
// shape is checked here, the values when parsed.
func cutTimestamp(line string) (ts, text string) {
	const n = len(timestampLayout)
	if len(line) <= n || line[n] != ' ' {
		return "", line
	}
	for i := range n {
		c := line[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return "", line
			}
		case 10:
			if c != ' ' {
				return "", line
			}
		case 13, 16:
			if c != ':' {
				return "", line
			}
		default:
			if c < '0' || c > '9' {
				return "", line
			}
		}
	}
	return line[:n], line[n+1:]
}

// parseMemoryActive reads "migration active, transferred 229.4 MiB of 2.0 GiB VM-state, 117.9 MiB/s".
func parseMemoryActive(text string) (tr, total uint64, speed float64, ok bool) {
	rest := strings.TrimPrefix(text, "migration active, transferred ")
	trS, rest, found := strings.Cut(rest, " of ")
	if !found {
		return 0, 0, 0, false
	}
	totalS, rest, found := strings.Cut(rest, " VM-state")
	if !found {
		return 0, 0, 0, false
	}
	if tr, ok = parseSize(trS); !ok {
		return 0, 0, 0, false
	}
	if total, ok = parseSize(totalS); !ok {
		return 0, 0, 0, false
	}
	if s, found := strings.CutPrefix(rest, ", "); found {
		speed, _ = parseSpeed(s)
	}
	return tr, total, speed, true
}

// parseMemoryStatusBytes reads the PVE 6 form "migration status: active (transferred 402876470, remaining
// 3802316800), total 4312604672)".
func parseMemoryStatusBytes(text string) (tr, total uint64, ok bool) {
	rest := strings.TrimPrefix(text, "migration status: active (transferred ")
	trS, rest, found := strings.Cut(rest, ",")
	if !found {
		return 0, 0, false
	}
	_, totalS, found := strings.Cut(rest, "total ")
	if !found {
		return 0, 0, false
	}
	totalS = strings.TrimRight(totalS, ") ")
	tr, err1 := strconv.ParseUint(strings.TrimSpace(trS), 10, 64)
	total, err2 := strconv.ParseUint(totalS, 10, 64)
	if err1 != nil || err2 != nil || total == 0 {
		return 0, 0, false
	}
	return tr, total, true
}

// parseDriveLine reads a drive mirror's progress: "drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in
// 9s[, ready]" (also "mirror-scsi0: …"), or PVE 6's "drive-scsi0: transferred: 1234 bytes remaining: 5678 bytes
// total: 6912 bytes progression: 17.85 % busy: 1 ready: 0".
func parseDriveLine(text string) (DiskProgress, bool) {
	head, rest, found := strings.Cut(text, ": transferred")
	if !found {
		return DiskProgress{}, false
	}
	drive, ok := strings.CutPrefix(head, "drive-")
	if !ok {
		if drive, ok = strings.CutPrefix(head, "mirror-"); !ok {
			return DiskProgress{}, false
		}
	}
	if drive == "" || strings.ContainsAny(drive, " :") {
		return DiskProgress{}, false
	}
	d := DiskProgress{Drive: drive}
	if after, old := strings.CutPrefix(rest, ": "); old {
		return parseOldDriveLine(d, after)
	}
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return DiskProgress{}, false
	}
	trS, rest, found := strings.Cut(rest, " of ")
	if !found {
		return DiskProgress{}, false
	}
	totalS, rest, found := strings.Cut(rest, " (")
	if !found {
		return DiskProgress{}, false
	}
	if d.TransferredBytes, ok = parseSize(trS); !ok {
		return DiskProgress{}, false
	}
	if d.TotalBytes, ok = parseSize(totalS); !ok {
		return DiskProgress{}, false
	}
	pctS, rest, found := strings.Cut(rest, "%)")
	if !found {
		return DiskProgress{}, false
	}
	pct, err := strconv.ParseFloat(pctS, 64)
	if err != nil || pct < 0 || pct != pct {
		return DiskProgress{}, false
	}
	d.Percent = min(pct, 100)
	if in, found := strings.CutPrefix(rest, " in "); found {
		durS, tail, _ := strings.Cut(in, ",")
		d.Elapsed = parseShortDuration(durS)
		d.Ready = strings.TrimSpace(tail) == "ready"
	}
	return d, true
}

func parseOldDriveLine(d DiskProgress, s string) (DiskProgress, bool) {
	f := strings.Fields(s)
	// 1234 bytes remaining: 5678 bytes total: 6912 bytes progression: 17.85 % busy: 1 ready: 0
	if len(f) < 9 || f[1] != "bytes" || f[2] != "remaining:" || f[5] != "total:" {
		return DiskProgress{}, false
	}
	tr, err1 := strconv.ParseUint(f[0], 10, 64)
	total, err2 := strconv.ParseUint(f[6], 10, 64)
	if err1 != nil || err2 != nil || total == 0 {
		return DiskProgress{}, false
	}
	d.TransferredBytes, d.TotalBytes = tr, total
	d.Percent = min(100*float64(tr)/float64(total), 100)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "ready:" {
			d.Ready = f[i+1] == "1"
		}
	}
	return d, true
}

var sizeUnits = map[string]float64{
	"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "bytes": 1,
}

// parseSize reads PVE's render_bytes output ("118.6 MiB", "0 B").
func parseSize(s string) (uint64, bool) {
	num, unit, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found {
		return 0, false
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v != v || v*mult >= 1<<63 {
		return 0, false
	}
	return uint64(v * mult), true
}

// parseSpeed reads "117.9 MiB/s", ignoring what follows (" - downtime 53 ms").
func parseSpeed(s string) (float64, bool) {
	sz, _, found := strings.Cut(s, "/s")
	if !found {
		return 0, false
	}
	v, ok := parseSize(sz)
	return float64(v), ok
}

// parseShortDuration reads "9s", "1m 5s", "1h 2m 3s"; unknown parts count zero.
func parseShortDuration(s string) time.Duration {
	var d time.Duration
	for s != "" {
		var f string
		s = strings.TrimLeft(s, " ")
		f, s, _ = strings.Cut(s, " ")
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[:len(f)-1])
		if err != nil || n < 0 {
			continue
		}
		switch f[len(f)-1] {
		case 's':
			d += time.Duration(n) * time.Second
		case 'm':
			d += time.Duration(n) * time.Minute
		case 'h':
			d += time.Duration(n) * time.Hour
		}
	}
	return d
}
