package pve

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UPID is a decoded task id: UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>: with the numbers in
// hex (PVE writes upper-case, 8 digits; pstart may be longer).
type UPID struct {
	Node      string
	PID       uint32
	PStart    uint64
	StartTime time.Time
	Type      string // qmigrate, vzmigrate, vzdump, ...
	ID        string // usually the vmid; empty for node-wide tasks such as startall
	User      string // "root@pam"
	TokenID   string // "backup" for "root@pam!backup"; empty for a user's own task
}

// ParseUPID decodes a task id.
func ParseUPID(s string) (UPID, error) {
	fail := func(what string) (UPID, error) {
		return UPID{}, fmt.Errorf("invalid UPID %q: %s", s, what)
	}
	if len(s) <= len("UPID:") || !strings.HasPrefix(s, "UPID:") || !strings.HasSuffix(s, ":") {
		return fail(`want "UPID:node:pid:pstart:starttime:type:id:user:"`)
	}
	f := strings.Split(s[len("UPID:"):len(s)-1], ":")
	if len(f) != 7 {
		return fail(fmt.Sprintf("%d fields, want 7", len(f)))
	}
	if !validNodeName(f[0]) {
		return fail("bad node name")
	}
	pid, err := parseHex(f[1], 8, 8)
	if err != nil {
		return fail("pid: " + err.Error())
	}
	pstart, err := parseHex(f[2], 8, 16)
	if err != nil {
		return fail("pstart: " + err.Error())
	}
	start, err := parseHex(f[3], 8, 8)
	if err != nil {
		return fail("starttime: " + err.Error())
	}
	if f[4] == "" || strings.ContainsAny(f[4], " \t\n") {
		return fail("bad task type")
	}
	if strings.ContainsAny(f[5], " \t\n") {
		return fail("bad task id")
	}
	user, token, _ := strings.Cut(f[6], "!")
	if user == "" || strings.ContainsAny(f[6], " \t\n") {
		return fail("bad user")
	}
	return UPID{
		Node: f[0], PID: uint32(pid), PStart: pstart, StartTime: time.Unix(int64(start), 0).UTC(),
		Type: f[4], ID: f[5], User: user, TokenID: token,
	}, nil
}

// String encodes the UPID as PVE does.
func (u UPID) String() string {
	user := u.User
	if u.TokenID != "" {
		user += "!" + u.TokenID
	}
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", u.Node, u.PID, u.PStart, u.StartTime.Unix(), u.Type, u.ID, user)
}

func parseHex(s string, minLen, maxLen int) (uint64, error) {
	if len(s) < minLen || len(s) > maxLen {
		return 0, fmt.Errorf("%q: want %d to %d hex digits", s, minLen, maxLen)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not hex", s)
	}
	return v, nil
}

// validNodeName accepts PVE node names: hostname labels of letters, digits, '-' and '.'.
func validNodeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// TaskOutcome is how a task ended, or that it has not.
type TaskOutcome int

const (
	TaskRunning  TaskOutcome = iota
	TaskOK                   // exit status "OK"
	TaskWarnings             // exit status "WARNINGS: N": the task succeeded but logged warnings
	TaskFailed               // any other exit status, which is PVE's error text
)

func (o TaskOutcome) String() string {
	switch o {
	case TaskRunning:
		return "running"
	case TaskOK:
		return "ok"
	case TaskWarnings:
		return "warnings"
	default:
		return "failed"
	}
}

// TaskState is /nodes/{node}/tasks/{upid}/status.
type TaskState struct {
	UPID    string
	Outcome TaskOutcome
	// ExitStatus is PVE's text: "OK", "WARNINGS: 2", or the error ("migration aborted"). Empty while running.
	ExitStatus string
	// Warnings is N of "WARNINGS: N".
	Warnings int
}

// Done reports whether the task has ended.
func (s *TaskState) Done() bool { return s.Outcome != TaskRunning }

// Succeeded reports whether the task ended with OK or with warnings.
func (s *TaskState) Succeeded() bool { return s.Outcome == TaskOK || s.Outcome == TaskWarnings }

// Err returns a *TaskError when the task failed, else nil.
func (s *TaskState) Err() error {
	if s.Outcome != TaskFailed {
		return nil
	}
	return &TaskError{UPID: s.UPID, ExitStatus: s.ExitStatus}
}

// TaskError is a task that ended with an error exit status.
type TaskError struct {
	UPID       string
	ExitStatus string
}

func (e *TaskError) Error() string { return fmt.Sprintf("task %s failed: %s", e.UPID, e.ExitStatus) }

// ClassifyExitStatus maps a task's exit status to its outcome; "" means still running.
func ClassifyExitStatus(s string) (TaskOutcome, int) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return TaskRunning, 0
	case s == "OK":
		return TaskOK, 0
	case strings.HasPrefix(s, "WARNINGS:"):
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(s, "WARNINGS:")))
		if err != nil || n < 0 {
			return TaskFailed, 0
		}
		return TaskWarnings, n
	default:
		return TaskFailed, 0
	}
}

func taskPath(upid string, rest string) (string, error) {
	u, err := ParseUPID(upid)
	if err != nil {
		return "", err
	}
	return nodePath(u.Node, "/tasks/", url.PathEscape(upid), rest), nil
}

// TaskStatus reads a task's state.
func (c *Client) TaskStatus(ctx context.Context, upid string) (*TaskState, error) {
	p, err := taskPath(upid, "/status")
	if err != nil {
		return nil, err
	}
	var b struct {
		Status     string `json:"status"`
		ExitStatus string `json:"exitstatus"`
	}
	if err := c.get(ctx, p, &b); err != nil {
		return nil, err
	}
	st := &TaskState{UPID: upid}
	if b.Status == "running" {
		return st, nil
	}
	st.ExitStatus = b.ExitStatus
	st.Outcome, st.Warnings = ClassifyExitStatus(b.ExitStatus)
	if st.Outcome == TaskRunning {
		// Stopped without an exit status: PVE could not read it (e.g. the worker was killed).
		st.Outcome, st.ExitStatus = TaskFailed, "stopped without exit status"
	}
	return st, nil
}

// TaskLogLine is one line of a task log; N counts from 1.
type TaskLogLine struct {
	N    int
	Text string
}

// TaskLog reads up to limit lines of a task's log starting at line index start (0-based, as PVE counts).
func (c *Client) TaskLog(ctx context.Context, upid string, start, limit int) ([]TaskLogLine, error) {
	q := url.Values{"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(limit)}}
	p, err := taskPath(upid, "/log?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var lines []struct {
		N flexInt `json:"n"`
		T string  `json:"t"`
	}
	if err := c.get(ctx, p, &lines); err != nil {
		return nil, err
	}
	out := make([]TaskLogLine, len(lines))
	for i, l := range lines {
		out[i] = TaskLogLine{N: int(l.N), Text: l.T}
	}
	return out, nil
}

// WaitTask polls a task every poll interval until it ends or ctx is done. A failed task is not an error of
// WaitTask: it returns the state (Outcome TaskFailed, ExitStatus with PVE's text; state.Err() wraps it).
// Answers saying the node is briefly unavailable are polled through.
func (c *Client) WaitTask(ctx context.Context, upid string, poll time.Duration) (*TaskState, error) {
	if poll <= 0 {
		poll = time.Second
	}
	if _, err := ParseUPID(upid); err != nil {
		return nil, err
	}
	for {
		st, err := c.TaskStatus(ctx, upid)
		switch {
		case err == nil && st.Done():
			return st, nil
		case err != nil && !IsUnavailable(err):
			return nil, fmt.Errorf("waiting for task %s: %w", upid, err)
		}
		if serr := sleepContext(ctx, poll); serr != nil {
			if err != nil {
				serr = errors.Join(serr, err)
			}
			return nil, fmt.Errorf("waiting for task %s: %w", upid, serr)
		}
	}
}
