package pve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseUPID(t *testing.T) {
	tests := []struct {
		in   string
		want UPID
		err  string
	}{
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:",
			want: UPID{Node: "node2", PID: 0xA3F2C, PStart: 0x855D1B3, StartTime: time.Unix(0x66A1B2C3, 0).UTC(), Type: "qmigrate", ID: "100", User: "root@pam"}},
		{in: "UPID:node3:00000A6B:0000094C:66A18E10:startall::root@pam:",
			want: UPID{Node: "node3", PID: 0xA6B, PStart: 0x94C, StartTime: time.Unix(0x66A18E10, 0).UTC(), Type: "startall", User: "root@pam"}},
		{in: "UPID:node1:001F4B2A:0855A0C1:66A19A10:vzdump:102:root@pam!backup:",
			want: UPID{Node: "node1", PID: 0x1F4B2A, PStart: 0x855A0C1, StartTime: time.Unix(0x66A19A10, 0).UTC(), Type: "vzdump", ID: "102", User: "root@pam", TokenID: "backup"}},
		{in: "UPID:pve:0000ABCD:1234567890:66A19A10:vzmigrate:101:svc@pve:",
			want: UPID{Node: "pve", PID: 0xABCD, PStart: 0x1234567890, StartTime: time.Unix(0x66A19A10, 0).UTC(), Type: "vzmigrate", ID: "101", User: "svc@pve"}},
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam", err: "want"},
		{in: "node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:", err: "want"},
		{in: "UPID:node2:A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:", err: "pid"},
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2CG:qmigrate:100:root@pam:", err: "starttime"},
		{in: "UPID:no de:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:", err: "node"},
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2C3::100:root@pam:", err: "type"},
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100::", err: "user"},
		{in: "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:extra:", err: "fields"},
		{in: "", err: "want"},
	}
	for _, tt := range tests {
		got, err := ParseUPID(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseUPID(%q) error %v, want one mentioning %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseUPID(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseUPID(%q) =\n %+v\nwant %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("String() = %q, want %q", s, tt.in)
		}
	}
}

func FuzzParseUPID(f *testing.F) {
	for _, s := range []string{
		"UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:",
		"UPID:node3:00000A6B:0000094C:66A18E10:startall::root@pam:",
		"UPID:node1:001F4B2A:0855A0C1:66A19A10:vzdump:102:root@pam!backup:",
		"UPID:a:00000000:00000000:00000000:x::u:",
		"UPID:::::::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUPID(s)
		if err != nil {
			return
		}
		// Whatever parses must survive an encode/decode round trip unchanged.
		again, err := ParseUPID(u.String())
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", u.String(), s, err)
		}
		if again != u {
			t.Fatalf("round trip changed %+v to %+v", u, again)
		}
	})
}

func TestClassifyExitStatus(t *testing.T) {
	tests := []struct {
		in       string
		outcome  TaskOutcome
		warnings int
	}{
		{"", TaskRunning, 0},
		{"OK", TaskOK, 0},
		{"WARNINGS: 1", TaskWarnings, 1},
		{"WARNINGS: 12", TaskWarnings, 12},
		{"WARNINGS: x", TaskFailed, 0},
		{"migration aborted", TaskFailed, 0},
		{"unexpected status", TaskFailed, 0},
	}
	for _, tt := range tests {
		o, n := ClassifyExitStatus(tt.in)
		if o != tt.outcome || n != tt.warnings {
			t.Errorf("ClassifyExitStatus(%q) = %v, %d; want %v, %d", tt.in, o, n, tt.outcome, tt.warnings)
		}
	}
}

const (
	runningUPID = "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:"
	runningPath = "/nodes/node2/tasks/" + runningUPID
)

func taskStatusBody(status, exit string) string {
	b := `{"data":{"upid":"` + runningUPID + `","node":"node2","pid":671532,"pstart":139841971,"starttime":1721873091,"type":"qmigrate","id":"100","user":"root@pam","status":"` + status + `"`
	if exit != "" {
		b += `,"exitstatus":"` + exit + `"`
	}
	return b + "}}"
}

func TestTaskStatusFixtures(t *testing.T) {
	f := newFakePVE(t)
	f.setFixture("GET", runningPath+"/status", "task_status_running.json")
	stopped := "UPID:node1:001F4B2A:0855A0C1:66A19A10:vzdump:102:root@pam!backup:"
	f.setFixture("GET", "/nodes/node1/tasks/"+stopped+"/status", "task_status_stopped.json")
	f.setFixture("GET", "/nodes/node1/tasks/"+stopped+"/log", "task_log_stopped.json")
	f.setFixture("GET", runningPath+"/log", "task_log_running.json")
	c := f.client()
	ctx := testContext(t)

	st, err := c.TaskStatus(ctx, runningUPID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done() || st.Outcome != TaskRunning {
		t.Errorf("running task = %+v", st)
	}
	st, err = c.TaskStatus(ctx, stopped)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Succeeded() || st.Outcome != TaskOK || st.ExitStatus != "OK" || st.Err() != nil {
		t.Errorf("stopped task = %+v", st)
	}
	lines, err := c.TaskLog(ctx, stopped, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 9 || lines[8] != (TaskLogLine{N: 9, Text: "TASK OK"}) {
		t.Errorf("log = %+v", lines)
	}
	lines, err = c.TaskLog(ctx, runningUPID, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 13 || lines[0].N != 1 {
		t.Errorf("running log has %d lines", len(lines))
	}
	if _, err := c.TaskStatus(ctx, "not-a-upid"); err == nil {
		t.Error("bad UPID accepted")
	}
}

func TestWaitTask(t *testing.T) {
	tests := []struct {
		name     string
		exit     string
		outcome  TaskOutcome
		warnings int
		wantErr  bool
	}{
		{"ok", "OK", TaskOK, 0, false},
		{"warnings are success", "WARNINGS: 2", TaskWarnings, 2, false},
		{"error text", "migration aborted", TaskFailed, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePVE(t)
			// Running for two polls, unavailable once, then stopped.
			seq := &sequence{steps: []route{
				{status: 200, body: taskStatusBody("running", "")},
				{status: 595},
				{status: 200, body: taskStatusBody("running", "")},
				{status: 200, body: taskStatusBody("stopped", tt.exit)},
			}}
			f.setOverride(seq)
			cfg := f.config()
			cfg.Retries = -1
			st, err := f.clientWith(cfg).WaitTask(testContext(t), runningUPID, time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if st.Outcome != tt.outcome || st.Warnings != tt.warnings || st.ExitStatus != tt.exit {
				t.Errorf("state = %+v", st)
			}
			if st.Succeeded() == tt.wantErr {
				t.Errorf("Succeeded() = %v", st.Succeeded())
			}
			var te *TaskError
			if got := errors.As(st.Err(), &te); got != tt.wantErr || (got && te.ExitStatus != tt.exit) {
				t.Errorf("Err() = %v", st.Err())
			}
			if seq.served() != 4 {
				t.Errorf("polled %d times, want 4", seq.served())
			}
		})
	}
}

func TestWaitTaskStopsOnContextAndHardErrors(t *testing.T) {
	f := newFakePVE(t)
	f.set("GET", runningPath+"/status", 200, taskStatusBody("running", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.client().WaitTask(ctx, runningUPID, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded", err)
	}
	f.set("GET", runningPath+"/status", 403, `{"data":null,"message":"Permission check failed\n"}`)
	if _, err := f.client().WaitTask(testContext(t), runningUPID, time.Millisecond); !IsForbidden(err) {
		t.Errorf("got %v, want 403", err)
	}
}
