package pvesim

import (
	"testing"
	"time"
)

// A long-running simulation keeps the newest maxFinishedTasks finished tasks and every running one; a
// forgotten task is unknown to the task endpoints, as a rotated-out task is to PVE.
func TestFinishedTasksAreBounded(t *testing.T) {
	scn, err := Builtin("default")
	if err != nil {
		t.Fatal(err)
	}
	clock := NewManualClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	sim, err := New(scn, Options{Clock: clock, TokenSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	sim.mu.Lock()
	defer sim.mu.Unlock()
	node := sim.nodes[0].spec.Name
	tok := apiToken{id: "root@pam"}
	before := len(sim.tasks) // the seeded history
	var first, last *task
	for i := range maxFinishedTasks + 100 {
		task := sim.newTask(node, clock.Now(), "vzdump", "", tok)
		task.duration, task.exit = time.Second, "OK"
		if i == 0 {
			first = task
		}
		last = task
		clock.Advance(time.Second)
	}
	running := sim.newTask(node, clock.Now(), "vzdump", "", tok)
	running.duration, running.exit = time.Hour, "OK"
	sim.settle(clock.Now())

	finished := 0
	for _, tk := range sim.tasks {
		if tk.done {
			finished++
		}
	}
	if finished != maxFinishedTasks {
		t.Errorf("%d finished tasks kept (%d seeded), want %d", finished, before, maxFinishedTasks)
	}
	if running.done || sim.taskByUPID[running.upid] != running {
		t.Error("the running task was dropped")
	}
	if sim.taskByUPID[first.upid] != nil {
		t.Error("the oldest finished task is still known")
	}
	if sim.taskByUPID[last.upid] != last {
		t.Error("the newest finished task was dropped")
	}
	if len(sim.taskByUPID) != len(sim.tasks) {
		t.Errorf("index has %d tasks, list %d", len(sim.taskByUPID), len(sim.tasks))
	}
}
