package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ClusterMember is a node entry of /cluster/status.
type ClusterMember struct {
	Name   string
	NodeID int
	Online bool
	Local  bool
	IP     string
	Level  string
}

// ClusterStatus is /cluster/status: the cluster entry (absent on a standalone node) and one entry per member.
type ClusterStatus struct {
	Cluster Cluster // PVEVersion, Release and RepoID are not part of this endpoint and stay empty
	Members []ClusterMember
}

type clusterStatusEntry struct {
	Type    string  `json:"type"`
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Nodes   flexInt `json:"nodes"`
	Version flexInt `json:"version"`
	Quorate pveBool `json:"quorate"`
	NodeID  flexInt `json:"nodeid"`
	Online  pveBool `json:"online"`
	Local   pveBool `json:"local"`
	IP      string  `json:"ip"`
	Level   string  `json:"level"`
}

// ClusterStatus reads /cluster/status. A standalone node has no cluster entry: it is reported quorate with
// NodeCount 1, as PVE itself treats it.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var entries []clusterStatusEntry
	if err := c.get(ctx, "/cluster/status", &entries); err != nil {
		return nil, err
	}
	return convertClusterStatus(entries), nil
}

func convertClusterStatus(entries []clusterStatusEntry) *ClusterStatus {
	cs := &ClusterStatus{}
	haveCluster := false
	for _, e := range entries {
		switch e.Type {
		case "cluster":
			haveCluster = true
			cs.Cluster.Name = e.Name
			cs.Cluster.Quorate = bool(e.Quorate)
			cs.Cluster.NodeCount = int(e.Nodes)
			cs.Cluster.ConfigVersion = int(e.Version)
		case "node":
			cs.Members = append(cs.Members, ClusterMember{
				Name: e.Name, NodeID: int(e.NodeID), Online: bool(e.Online), Local: bool(e.Local),
				IP: e.IP, Level: e.Level,
			})
		}
	}
	if !haveCluster {
		cs.Cluster.Quorate = true
		cs.Cluster.NodeCount = len(cs.Members)
	}
	sort.Slice(cs.Members, func(i, j int) bool { return cs.Members[i].Name < cs.Members[j].Name })
	return cs
}

// Version is /version.
type Version struct {
	Version string // "9.2.11"
	Release string // "9.2"
	RepoID  string
}

// Version reads /version.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	var v struct {
		Version string `json:"version"`
		Release string `json:"release"`
		RepoID  string `json:"repoid"`
	}
	if err := c.get(ctx, "/version", &v); err != nil {
		return nil, err
	}
	return &Version{Version: v.Version, Release: v.Release, RepoID: v.RepoID}, nil
}

type haResourceEntry struct {
	SID   string `json:"sid"`
	Type  string `json:"type"`
	State string `json:"state"`
	Group string `json:"group"`
}

// HAResources reads /cluster/ha/resources (the configured resources, without their live state).
func (c *Client) HAResources(ctx context.Context) ([]HAResource, error) {
	var entries []haResourceEntry
	if err := c.get(ctx, "/cluster/ha/resources", &entries); err != nil {
		return nil, err
	}
	out := make([]HAResource, 0, len(entries))
	for _, e := range entries {
		typ, vmid := splitSID(e.SID)
		if e.Type != "" {
			typ = e.Type
		}
		state := e.State
		if state == "" {
			state = "started" // pve-ha-manager's default request state
		}
		out = append(out, HAResource{SID: e.SID, Type: typ, VMID: vmid, State: state})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SID < out[j].SID })
	return out, nil
}

// splitSID splits "vm:100" into "vm" and 100.
func splitSID(sid string) (string, int) {
	typ, id, ok := strings.Cut(sid, ":")
	if !ok {
		return "", 0
	}
	n, _ := strconv.Atoi(id)
	return typ, n
}

// HAManagerStatus is /cluster/ha/status/current: quorum, the CRM master and each service's current state.
type HAManagerStatus struct {
	Quorate bool
	Master  string
	// Services maps a sid ("vm:100") to its live state.
	Services map[string]HAService
}

// HAService is a service entry of /cluster/ha/status/current.
type HAService struct {
	Node     string
	CRMState string // started, migrate, relocate, fence, error, ...
	State    string // requested state
}

type haStatusEntry struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Node         string  `json:"node"`
	Quorate      pveBool `json:"quorate"`
	SID          string  `json:"sid"`
	CRMState     string  `json:"crm_state"`
	State        string  `json:"state"`
	RequestState string  `json:"request_state"`
}

// HAStatusCurrent reads /cluster/ha/status/current.
func (c *Client) HAStatusCurrent(ctx context.Context) (*HAManagerStatus, error) {
	var entries []haStatusEntry
	if err := c.get(ctx, "/cluster/ha/status/current", &entries); err != nil {
		return nil, err
	}
	st := &HAManagerStatus{Services: map[string]HAService{}}
	for _, e := range entries {
		switch e.Type {
		case "quorum":
			st.Quorate = bool(e.Quorate)
		case "master":
			st.Master = e.Node
		case "service":
			state := e.RequestState
			if state == "" {
				state = e.State
			}
			st.Services[e.SID] = HAService{Node: e.Node, CRMState: e.CRMState, State: state}
		}
	}
	return st, nil
}

// mergeHA joins configured resources with their live state.
func mergeHA(resources []HAResource, st *HAManagerStatus) HAStatus {
	out := HAStatus{Resources: make([]HAResource, len(resources))}
	copy(out.Resources, resources)
	if st == nil {
		return out
	}
	out.Quorate, out.Master = st.Quorate, st.Master
	for i := range out.Resources {
		if svc, ok := st.Services[out.Resources[i].SID]; ok {
			out.Resources[i].CRMState = svc.CRMState
			out.Resources[i].Node = svc.Node
		}
	}
	return out
}

type taskEntry struct {
	UPID      string     `json:"upid"`
	Node      string     `json:"node"`
	Type      string     `json:"type"`
	ID        flexString `json:"id"`
	User      string     `json:"user"`
	TokenID   string     `json:"tokenid"`
	StartTime flexInt    `json:"starttime"`
	EndTime   flexInt    `json:"endtime"`
	Status    string     `json:"status"`
}

// Tasks reads /cluster/tasks: the cluster's running tasks and its recently finished ones.
func (c *Client) Tasks(ctx context.Context) ([]Task, error) {
	var entries []taskEntry
	if err := c.get(ctx, "/cluster/tasks", &entries); err != nil {
		return nil, err
	}
	out := make([]Task, 0, len(entries))
	for _, e := range entries {
		t := Task{
			UPID: e.UPID, Node: e.Node, Type: e.Type, ID: string(e.ID), User: e.User, TokenID: e.TokenID,
			StartTime: unixTime(e.StartTime), Status: e.Status,
		}
		if e.EndTime > 0 {
			t.EndTime = unixTime(e.EndTime)
		}
		if t.TokenID == "" {
			// Older PVE leaves "user!token" in user.
			if u, tok, ok := strings.Cut(t.User, "!"); ok {
				t.User, t.TokenID = u, tok
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func unixTime(s flexInt) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// NotBackedUp reads /cluster/backup-info/not-backed-up and returns the ids ("qemu/100") no backup job covers.
func (c *Client) NotBackedUp(ctx context.Context) ([]string, error) {
	var entries []struct {
		VMID flexInt `json:"vmid"`
		Type string  `json:"type"`
	}
	if err := c.get(ctx, "/cluster/backup-info/not-backed-up", &entries); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Type+"/"+strconv.Itoa(int(e.VMID)))
	}
	sort.Strings(out)
	return out, nil
}

// QDevice is the corosync QDevice as the node that answered the API call sees it (/cluster/config/qdevice).
type QDevice struct {
	Model      string // "Net"
	Algorithm  string // "Fifty-Fifty split", "LMS", ...
	QNetdHost  string // "10.0.0.9:5403"
	TieBreaker string // "Node with lowest node ID"
	State      string // "Connected", "Connect failed", "Waiting for init reply", ...
}

// Connected reports whether the QDevice is connected to its QNetd server, the one State that lends its vote.
func (q QDevice) Connected() bool { return q.State == "Connected" }

// QDevice reads /cluster/config/qdevice and returns nil when no QDevice is configured.
//
// What PVE answers, verified in pve-cluster src/PVE/API2/ClusterConfig.pm (method "status", path 'qdevice',
// "Get QDevice status", Sys.Audit on /): {} when the socket /var/run/corosync-qdevice/corosync-qdevice.sock
// does not exist, which is the case without a QDevice and on a standalone node (the handler does not look at
// the cluster config at all); otherwise it sends "status verbose" to that socket and returns the "Key: value"
// lines whose key is one of Algorithm, Echo reply, Last poll call, Model, QNetd host, State, Tie-breaker, every
// value a string. Any key may be missing (corosync-qdevice prints what it knows), so each is optional here; an
// object without keys means "none", as prometheus-pve-exporter's QDeviceCollector reads it.
func (c *Client) QDevice(ctx context.Context) (*QDevice, error) {
	var answer map[string]json.RawMessage
	if err := c.get(ctx, "/cluster/config/qdevice", &answer); err != nil {
		return nil, err
	}
	if len(answer) == 0 {
		return nil, nil
	}
	var q QDevice
	for key, dst := range map[string]*string{
		"Model": &q.Model, "Algorithm": &q.Algorithm, "QNetd host": &q.QNetdHost, "Tie-breaker": &q.TieBreaker,
		"State": &q.State,
	} {
		raw, ok := answer[key]
		if !ok {
			continue
		}
		var v flexString
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("reading /cluster/config/qdevice %q: %w", key, err)
		}
		*dst = string(v)
	}
	return &q, nil
}
