package pvesim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
)

// task is a PVE worker task. Its whole course (log lines with their offsets, duration, outcome) is planned
// when it starts; what the API shows is that plan cut at the current simulated time, and the task's effect is
// applied when the clock passes its end (settle).
type task struct {
	upid      string
	node      string
	pid       uint32
	pstart    uint32
	start     time.Time
	typ       string
	id        string
	user      string
	tokenid   string
	lines     []taskLine
	duration  time.Duration
	exit      string // "OK" or the error text
	done      bool
	onSuccess func(end time.Time)
	onFailure func(end time.Time)
}

type taskLine struct {
	at   time.Duration
	text string
}

// upidRE matches PVE's UPID encoding.
var upidRE = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$`)

// newTask registers a task on node started at now by the token (a user without "!" for root@pam's own).
func (s *Simulator) newTask(node string, now time.Time, typ, id string, tok apiToken) *task {
	n := s.nodeByName[node]
	s.taskSeq++
	pid := uint32(100000 + mix(uint64(s.scn.Seed), uint64(s.taskSeq))%3000000)
	pstart := uint32(now.Sub(n.boot).Seconds() * 100)
	user, tokenid, _ := strings.Cut(tok.id, "!")
	t := &task{
		upid: fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, pid, pstart, uint32(now.Unix()), typ, id, tok.id),
		node: node, pid: pid, pstart: pstart, start: now.Truncate(time.Second), typ: typ, id: id, user: user, tokenid: tokenid,
	}
	s.tasks = append(s.tasks, t)
	s.taskByUPID[t.upid] = t
	return t
}

func (t *task) end() time.Time { return t.start.Add(t.duration) }

// settle finishes every task whose end has passed, oldest end first, and applies its effect. Callers hold s.mu.
// A finished task may start another (an HA migration request starts the CRM's migration), so it repeats
// until nothing is due.
func (s *Simulator) settle(now time.Time) {
	settled := false
	for {
		var due []*task
		for _, t := range s.tasks {
			if !t.done && !now.Before(t.end()) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			if settled {
				s.forgetOldTasks()
			}
			return
		}
		settled = true
		sort.SliceStable(due, func(i, j int) bool { return due[i].end().Before(due[j].end()) })
		for _, t := range due {
			t.done = true
			level.Info(s.logger).Log("msg", "task finished", "upid", t.upid, "exitstatus", t.exit)
			if t.exit == "OK" {
				if t.onSuccess != nil {
					t.onSuccess(t.end())
				}
			} else if t.onFailure != nil {
				t.onFailure(t.end())
			}
		}
		s.changed()
	}
}

// maxFinishedTasks bounds the finished tasks the simulator remembers, as PVE's task index is rotated: a demo
// that runs for weeks must not grow without bound, nor slow down every call that settles tasks.
const maxFinishedTasks = 5000

// forgetOldTasks drops the oldest finished tasks beyond maxFinishedTasks; their status and log then answer as
// for an unknown task. Callers hold s.mu.
func (s *Simulator) forgetOldTasks() {
	finished := 0
	for _, t := range s.tasks {
		if t.done {
			finished++
		}
	}
	drop := finished - maxFinishedTasks
	if drop <= 0 {
		return
	}
	kept := s.tasks[:0]
	for _, t := range s.tasks { // in start order: the oldest go first
		if drop > 0 && t.done {
			delete(s.taskByUPID, t.upid)
			drop--
			continue
		}
		kept = append(kept, t)
	}
	clear(s.tasks[len(kept):])
	s.tasks = kept
}

// started says whether t has begun by now; the CRM's tasks are planned a few seconds ahead.
func (t *task) started(now time.Time) bool { return !t.start.After(now) }

// visibleLines are the log lines written by now, with the final TASK line once the task is done.
func (t *task) visibleLines(now time.Time) []string {
	var out []string
	for _, l := range t.lines {
		if t.start.Add(l.at).After(now) {
			break
		}
		out = append(out, l.text)
	}
	if t.done {
		if t.exit == "OK" {
			out = append(out, "TASK OK")
		} else {
			out = append(out, "TASK ERROR: "+t.exit)
		}
	}
	return out
}

func (t *task) entry(withPstart bool) obj {
	e := obj{"upid": t.upid, "node": t.node, "starttime": t.start.Unix(), "type": t.typ, "id": t.id, "user": t.user}
	if t.tokenid != "" {
		e["tokenid"] = t.tokenid
	}
	if withPstart {
		e["pid"], e["pstart"] = t.pid, t.pstart
	}
	if t.done {
		e["endtime"], e["status"] = t.end().Unix(), t.exit
	} else if !withPstart {
		e["pid"] = t.pid
	}
	return e
}

// getClusterTasks lists recent tasks of all nodes: running ones first, then finished ones, newest first.
func (s *Simulator) getClusterTasks(_ *call, now time.Time) (any, error) {
	out := []obj{}
	ordered := s.tasksNewestFirst(now)
	for _, t := range ordered {
		if !t.done {
			e := t.entry(false)
			e["saved"] = "0"
			out = append(out, e)
		}
	}
	for _, t := range ordered {
		if t.done {
			e := t.entry(false)
			e["saved"] = "1"
			out = append(out, e)
		}
	}
	return out, nil
}

// tasksNewestFirst lists the tasks that have started by now, newest first.
func (s *Simulator) tasksNewestFirst(now time.Time) []*task {
	out := make([]*task, 0, len(s.tasks))
	for i := len(s.tasks) - 1; i >= 0; i-- {
		if s.tasks[i].started(now) {
			out = append(out, s.tasks[i])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start.After(out[j].start) })
	return out
}

func (s *Simulator) getNodeTasks(c *call, now time.Time) (any, error) {
	node := c.vars["node"]
	start, limit := c.int("start", 0), c.int("limit", 50)
	out := []obj{}
	skipped := 0
	for _, t := range s.tasksNewestFirst(now) {
		if t.node != node {
			continue
		}
		if v := c.params["vmid"]; v != "" && t.id != v {
			continue
		}
		if f := c.params["typefilter"]; f != "" && t.typ != f {
			continue
		}
		if c.bool("errors") && (!t.done || t.exit == "OK") {
			continue
		}
		if src := c.params["source"]; (src == "active" && t.done) || (src == "" || src == "archive") && !t.done {
			continue
		}
		if skipped < start {
			skipped++
			continue
		}
		if len(out) >= limit {
			break
		}
		out = append(out, t.entry(true))
	}
	return out, nil
}

func (s *Simulator) findTask(c *call, now time.Time) (*task, error) {
	upid := c.vars["upid"]
	if !upidRE.MatchString(upid) {
		return nil, paramError(map[string]string{"upid": "unable to parse worker upid '" + upid + "'"})
	}
	t := s.taskByUPID[upid]
	if t == nil || t.node != c.vars["node"] || !t.started(now) {
		return nil, errf(http.StatusInternalServerError, "task '%s' does not exist\n", upid)
	}
	return t, nil
}

func (s *Simulator) getTaskStatus(c *call, now time.Time) (any, error) {
	t, err := s.findTask(c, now)
	if err != nil {
		return nil, err
	}
	e := obj{"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(), "type": t.typ, "id": t.id, "user": t.user}
	if t.tokenid != "" {
		e["tokenid"] = t.tokenid
	}
	if t.done {
		e["status"], e["exitstatus"] = "stopped", t.exit
	} else {
		e["status"] = "running"
	}
	return e, nil
}

func (s *Simulator) getTaskLog(c *call, now time.Time) (any, error) {
	t, err := s.findTask(c, now)
	if err != nil {
		return nil, err
	}
	lines := t.visibleLines(now)
	start, limit := max(c.int("start", 0), 0), c.int("limit", 50)
	out := []obj{}
	for i := start; i < len(lines) && len(out) < limit; i++ {
		out = append(out, obj{"n": i + 1, "t": lines[i]})
	}
	if len(lines) == 0 {
		out = append(out, obj{"n": 1, "t": "no content"})
	}
	return withTotal{data: out, total: len(lines)}, nil
}

// seedTaskHistory gives the cluster the finished tasks a real one has before the simulation starts: each
// node's "startall" at boot and last night's backup job of its guests (vzdump to the first storage that
// holds backups).
func (s *Simulator) seedTaskHistory() {
	root := apiToken{id: "root@pam"}
	backupStorage := ""
	for _, st := range s.scn.Storages {
		if hasContent(st.Content, "backup") {
			backupStorage = st.ID
			break
		}
	}
	night := s.epoch.Add(-24 * time.Hour).Truncate(24 * time.Hour).Add(time.Hour)
	for _, n := range s.nodes {
		name := n.spec.Name
		t := s.newTask(name, n.boot.Add(45*time.Second), "startall", "", root)
		log := &taskLog{start: t.start}
		for _, g := range s.guests {
			if g.node == name && g.spec.Onboot {
				log.lines = append(log.lines, taskLine{at: log.at, text: fmt.Sprintf("Starting VM %d", g.spec.VMID)})
				log.wait(2 * time.Second)
			}
		}
		t.lines, t.duration, t.exit, t.done = log.lines, log.at, "OK", true

		if backupStorage == "" || !night.After(n.boot) {
			continue
		}
		var vmids []string
		for _, g := range s.guests {
			if g.node == name && !g.spec.Template {
				vmids = append(vmids, strconv.Itoa(g.spec.VMID))
			}
		}
		if len(vmids) == 0 {
			continue
		}
		t = s.newTask(name, night, "vzdump", "", root)
		log = &taskLog{start: t.start}
		add := func(format string, args ...any) {
			log.lines = append(log.lines, taskLine{at: log.at, text: fmt.Sprintf(format, args...)})
		}
		add("INFO: starting new backup job: vzdump %s --storage %s --mode snapshot --compress zstd --node %s --quiet 1", strings.Join(vmids, " "), backupStorage, name)
		for _, id := range vmids {
			add("INFO: Starting Backup of VM %s", id)
			log.wait(80 * time.Second)
			add("INFO: Finished Backup of VM %s (00:01:20)", id)
		}
		add("INFO: Backup job finished successfully")
		t.lines, t.duration, t.exit, t.done = log.lines, log.at, "OK", true
	}
	sort.SliceStable(s.tasks, func(i, j int) bool { return s.tasks[i].start.Before(s.tasks[j].start) })
}

// deleteTask stops a running task like PVE's DELETE /nodes/{node}/tasks/{upid}: the worker gets SIGTERM, a
// migration aborts ("interrupted by signal") and its guest stays where it was.
func (s *Simulator) deleteTask(c *call, now time.Time) (any, error) {
	t, err := s.findTask(c, now)
	if err != nil {
		return nil, err
	}
	if t.done {
		return nil, nil
	}
	var kept []taskLine
	for _, l := range t.lines {
		if !t.start.Add(l.at).After(now) {
			kept = append(kept, l)
		}
	}
	log := &taskLog{start: t.start, at: now.Sub(t.start), lines: kept}
	log.add("received interrupt")
	log.add("ERROR: migration aborted (duration %s): interrupted by signal", formatDuration(log.at))
	t.lines, t.duration, t.exit = log.lines, log.at, "migration aborted"
	s.settle(now)
	return nil, nil
}

// taskLog builds a task's planned log; lines carry PVE's "YYYY-MM-DD HH:MM:SS " prefix of migration logs.
type taskLog struct {
	start time.Time
	at    time.Duration
	lines []taskLine
}

func (l *taskLog) add(format string, args ...any) {
	ts := l.start.Add(l.at).Format("2006-01-02 15:04:05")
	l.lines = append(l.lines, taskLine{at: l.at, text: ts + " " + fmt.Sprintf(format, args...)})
}

func (l *taskLog) wait(d time.Duration) { l.at += d }

// formatDuration is PVE's HH:MM:SS task duration.
func formatDuration(d time.Duration) string {
	sec := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

// humanSize is PVE::Tools::render_bytes as QEMU migration logs print it ("1.1 GiB").
func humanSize(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + " " + units[i]
}

// shortDuration is how drive-mirror progress prints elapsed time ("30s", "5m 2s").
func shortDuration(d time.Duration) string {
	sec := int(d.Seconds())
	if sec < 60 {
		return strconv.Itoa(sec) + "s"
	}
	return fmt.Sprintf("%dm %ds", sec/60, sec%60)
}
