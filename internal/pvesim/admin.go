package pvesim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Admin API (outside /api2, no authentication; the simulator listens on loopback):
//
//	GET    /_sim/state   nodes, guests (node, status, lock) and tasks at the current simulated time
//	GET    /_sim/faults  current faults (the Faults JSON)
//	PUT    /_sim/faults  replace the faults (POST does the same); DELETE clears them
//	GET    /_sim/clock   {"now": RFC 3339, "manual": bool}
//	POST   /_sim/clock   {"advance": "5m"} moves a manual clock forward
func (s *Simulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_sim/state":
		if r.Method != http.MethodGet {
			adminError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		adminJSON(w, s.State())
	case "/_sim/faults":
		switch r.Method {
		case http.MethodGet:
			adminJSON(w, s.Faults())
		case http.MethodPut, http.MethodPost:
			var f Faults
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				adminError(w, http.StatusBadRequest, "decoding faults: "+err.Error())
				return
			}
			if err := s.SetFaults(f); err != nil {
				adminError(w, http.StatusBadRequest, err.Error())
				return
			}
			adminJSON(w, s.Faults())
		case http.MethodDelete:
			_ = s.SetFaults(Faults{})
			adminJSON(w, s.Faults())
		default:
			adminError(w, http.StatusMethodNotAllowed, "use GET, PUT or DELETE")
		}
	case "/_sim/clock":
		mc, manual := s.clock.(*ManualClock)
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			var req struct {
				Advance Duration `json:"advance"`
			}
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				adminError(w, http.StatusBadRequest, "decoding clock request: "+err.Error())
				return
			}
			if !manual {
				adminError(w, http.StatusConflict, "the clock is not manual (start pve-sim with --speed 0)")
				return
			}
			mc.Advance(time.Duration(req.Advance))
		default:
			adminError(w, http.StatusMethodNotAllowed, "use GET or POST")
			return
		}
		adminJSON(w, map[string]any{"now": s.Now().UTC().Format(time.RFC3339), "manual": manual})
	default:
		adminError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s", r.URL.Path))
	}
}

func adminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// State is a compact view of the simulated cluster for tests, demos and /_sim/state.
type State struct {
	Now    time.Time    `json:"now"`
	Nodes  []NodeState  `json:"nodes"`
	Guests []GuestState `json:"guests"`
	Tasks  []TaskState  `json:"tasks"`
}

// NodeState is a node's usage.
type NodeState struct {
	Name   string  `json:"name"`
	Online bool    `json:"online"`
	CPU    float64 `json:"cpu"`
	Mem    uint64  `json:"mem"`
	MaxMem uint64  `json:"maxmem"`
	Guests int     `json:"guests"`
}

// GuestState is where a guest is and what it does.
type GuestState struct {
	VMID   int     `json:"vmid"`
	Type   string  `json:"type"`
	Name   string  `json:"name"`
	Node   string  `json:"node"`
	Status string  `json:"status"`
	Lock   string  `json:"lock,omitempty"`
	CPU    float64 `json:"cpu"`
	Mem    uint64  `json:"mem"`
}

// TaskState is a task's progress.
type TaskState struct {
	UPID   string `json:"upid"`
	Status string `json:"status"`
	Exit   string `json:"exitstatus,omitempty"`
}

// State returns the cluster at the current simulated time (settling finished tasks first).
func (s *Simulator) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	snap := s.snapshotAt(now)
	st := State{Now: now.UTC()}
	count := map[string]int{}
	for i, g := range s.guests {
		gs := snap.guests[i]
		count[g.node]++
		st.Guests = append(st.Guests, GuestState{VMID: g.spec.VMID, Type: g.spec.Type, Name: g.spec.Name, Node: g.node,
			Status: gs.status, Lock: g.lock, CPU: round(gs.cpu, 4), Mem: gs.mem})
	}
	for i, n := range s.nodes {
		ns := snap.nodes[i]
		st.Nodes = append(st.Nodes, NodeState{Name: n.spec.Name, Online: ns.online, CPU: round(ns.cpu, 4), Mem: ns.mem,
			MaxMem: uint64(n.spec.Memory), Guests: count[n.spec.Name]})
	}
	for _, t := range s.tasks {
		ts := TaskState{UPID: t.upid, Status: "running"}
		if t.done {
			ts.Status, ts.Exit = "stopped", t.exit
		}
		st.Tasks = append(st.Tasks, ts)
	}
	return st
}
