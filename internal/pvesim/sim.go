package pvesim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
)

// Token ids the simulator accepts. The admin token has every privilege (like root@pam with privsep=0); the
// audit token has PVEAuditor on / (GETs only), like the read-only token an exporter should use.
const (
	AdminTokenID = "root@pam!proxbalance"
	AuditTokenID = "root@pam!proxbalance-audit"
)

// statsInterval is how often PVE's pvestatd refreshes the numbers the API shows; the simulator's values step
// at the same pace, which also makes /cluster/resources cacheable.
const statsInterval = 10 * time.Second

// Options configure a Simulator. The zero value is usable: real-time clock, random token secrets.
type Options struct {
	// Clock drives simulated time; nil means a ScaledClock at speed 1 from the scenario start (or now). The
	// scenario's history (guest uptimes, node boots) is laid out before the scenario start, or before the
	// clock's time when the scenario has none.
	Clock Clock
	// TokenSecret and AuditTokenSecret are the secrets of AdminTokenID and AuditTokenID; empty means random.
	TokenSecret      string
	AuditTokenSecret string
	// AuthFailureDelay is how long a 401 waits, as real PVE does (3 s); default 0.
	AuthFailureDelay time.Duration
	// Logger receives request and task logs; nil discards them.
	Logger log.Logger
}

// Simulator is a stateful simulated PVE cluster. All methods are safe for concurrent use.
type Simulator struct {
	scn    *Scenario
	clock  Clock
	logger log.Logger
	major  int
	minor  int
	epoch  time.Time
	tokens map[string]apiToken
	delay  time.Duration

	mu         sync.Mutex
	nodes      []*simNode
	nodeByName map[string]*simNode
	storages   map[string]StorageSpec
	guests     []*simGuest // sorted by vmid
	guestByID  map[int]*simGuest
	tasks      []*task // in start order
	taskByUPID map[string]*task
	faults     Faults
	errRNG     *mrand.Rand
	taskSeq    uint32
	// generation changes whenever placement, locks, status or faults change; caches key on it.
	generation uint64
	snap       *snapshot
	resCache   map[string][]byte
	resCacheAt resourcesKey
}

type apiToken struct {
	id     string
	secret string
	admin  bool
}

type simNode struct {
	spec     NodeSpec
	nodeID   int
	boot     time.Time
	storages map[string]bool
	sslFP    string
}

type placement struct {
	until time.Time
	node  string
}

type simGuest struct {
	spec    GuestSpec
	node    string
	running bool
	lock    string
	// started is when the current process started: uptime and counters count from it.
	started time.Time
	pid     int
	wl      workload
	// firstStart is when the guest first started; RRD history begins there.
	firstStart time.Time
	// history holds the nodes the guest was on before its current one, for RRD history of nodes.
	history []placement
}

// New builds a simulator from a scenario (ParseScenario, LoadScenario, Builtin, or built in Go: New applies
// the defaults to unset fields and validates it).
func New(scn *Scenario, opts Options) (*Simulator, error) {
	if scn == nil {
		return nil, fmt.Errorf("no scenario")
	}
	scn.applyDefaults()
	if err := scn.Revalidate(); err != nil {
		return nil, fmt.Errorf("invalid scenario: %w", err)
	}
	clock := opts.Clock
	epoch := scn.startTime
	switch {
	case epoch.IsZero() && clock != nil:
		epoch = clock.Now()
	case epoch.IsZero():
		epoch = time.Now().Truncate(time.Second)
	}
	if clock == nil {
		clock = NewScaledClock(epoch, 1)
	}
	logger := opts.Logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	admin, audit := opts.TokenSecret, opts.AuditTokenSecret
	if admin == "" {
		admin = randomSecret()
	}
	if audit == "" {
		audit = randomSecret()
	}
	s := &Simulator{
		scn:        scn,
		clock:      clock,
		logger:     logger,
		major:      scn.pveMajor(),
		epoch:      epoch,
		delay:      opts.AuthFailureDelay,
		nodeByName: map[string]*simNode{},
		storages:   map[string]StorageSpec{},
		guestByID:  map[int]*simGuest{},
		taskByUPID: map[string]*task{},
		faults:     cloneFaults(scn.Faults),
		errRNG:     mrand.New(mrand.NewPCG(uint64(scn.Seed), 0x5eed)),
		tokens: map[string]apiToken{
			AdminTokenID: {id: AdminTokenID, secret: admin, admin: true},
			AuditTokenID: {id: AuditTokenID, secret: audit},
		},
	}
	fmt.Sscanf(strings.SplitN(scn.PVEVersion, ".", 3)[1], "%d", &s.minor)
	for _, st := range scn.Storages {
		s.storages[st.ID] = st
	}
	seed := uint64(scn.Seed)
	for i, ns := range scn.Nodes {
		n := &simNode{
			spec:     ns,
			nodeID:   i + 1,
			boot:     epoch.Add(-time.Duration(3+mix(seed, uint64(i))%40) * 24 * time.Hour).Add(-time.Duration(mix(seed, uint64(i)+77)%86400) * time.Second),
			storages: map[string]bool{},
			sslFP:    fingerprint(mix(seed, uint64(i)+1000)),
		}
		for _, id := range ns.Storages {
			n.storages[id] = true
		}
		s.nodes = append(s.nodes, n)
		s.nodeByName[ns.Name] = n
	}
	for _, gs := range scn.Guests {
		h := mix(seed, uint64(gs.VMID))
		node := s.nodeByName[gs.Node]
		started := epoch.Add(-time.Duration(1+h%(30*24)) * time.Hour)
		if started.Before(node.boot) {
			started = node.boot.Add(time.Duration(30+h%300) * time.Second)
		}
		g := &simGuest{
			spec:       gs,
			node:       gs.Node,
			running:    gs.Status == "running",
			lock:       gs.Lock,
			started:    started,
			firstStart: started,
			pid:        1000 + int(h%4000000),
			wl:         newWorkload(gs.Workload, scn.Seed, gs.VMID, epoch),
		}
		s.guests = append(s.guests, g)
		s.guestByID[gs.VMID] = g
	}
	sort.Slice(s.guests, func(i, j int) bool { return s.guests[i].spec.VMID < s.guests[j].spec.VMID })
	s.seedTaskHistory()
	return s, nil
}

func randomSecret() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func fingerprint(h uint64) string {
	parts := make([]string, 32)
	for i := range parts {
		h = mix(h, uint64(i))
		parts[i] = fmt.Sprintf("%02X", byte(h))
	}
	return strings.Join(parts, ":")
}

// TokenSecret is the admin token's secret; AuditTokenSecret the read-only one's.
func (s *Simulator) TokenSecret() string      { return s.tokens[AdminTokenID].secret }
func (s *Simulator) AuditTokenSecret() string { return s.tokens[AuditTokenID].secret }

// Clock is the simulator's clock (a *ManualClock when tests passed one).
func (s *Simulator) Clock() Clock { return s.clock }

// Scenario is the scenario the simulator runs.
func (s *Simulator) Scenario() *Scenario { return s.scn }

// Faults returns the current faults.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneFaults(s.faults)
}

// SetFaults replaces the current faults; unknown node names or vmids are errors.
func (s *Simulator) SetFaults(f Faults) error {
	for _, list := range [][]string{f.OfflineNodes, f.ForbiddenNodes} {
		for _, n := range list {
			if s.nodeByName[n] == nil {
				return fmt.Errorf("unknown node %q", n)
			}
		}
	}
	for n := range f.NodeLatency {
		if s.nodeByName[n] == nil {
			return fmt.Errorf("node_latency: unknown node %q", n)
		}
	}
	for n, code := range f.NodeErrors {
		if s.nodeByName[n] == nil {
			return fmt.Errorf("node_errors: unknown node %q", n)
		}
		if !serverError(code) {
			return fmt.Errorf("node_errors: %s: status %d is not a server error (500..599)", n, code)
		}
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("error_rate %v is outside 0..1", f.ErrorRate)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range f.FailMigrations {
		if m.VMID != 0 && s.guestByID[m.VMID] == nil {
			return fmt.Errorf("fail_migrations: unknown vmid %d", m.VMID)
		}
	}
	s.faults = cloneFaults(f)
	s.changed()
	return nil
}

// serverError reports whether code is an HTTP server error status, the only kind NodeErrors may inject.
func serverError(code int) bool { return code >= 500 && code <= 599 }

func cloneFaults(f Faults) Faults {
	c := f
	c.NodeLatency = nil
	if len(f.NodeLatency) > 0 {
		c.NodeLatency = make(map[string]Duration, len(f.NodeLatency))
		for k, v := range f.NodeLatency {
			c.NodeLatency[k] = v
		}
	}
	c.NodeErrors = maps.Clone(f.NodeErrors)
	c.OfflineNodes = slices.Clone(f.OfflineNodes)
	c.ForbiddenNodes = slices.Clone(f.ForbiddenNodes)
	c.FailMigrations = slices.Clone(f.FailMigrations)
	return c
}

// changed invalidates derived data after a state change. Callers hold s.mu.
func (s *Simulator) changed() {
	s.generation++
	s.snap = nil
	s.resCache = nil
}

func (s *Simulator) nodeOnline(name string) bool {
	return !slices.Contains(s.faults.OfflineNodes, name)
}

// nodeAt is where g was at time t.
func (g *simGuest) nodeAt(t time.Time) string {
	for _, p := range g.history {
		if t.Before(p.until) {
			return p.node
		}
	}
	return g.node
}

// ranAt says whether g ran at time t. A guest stopped now has no usage history, which is what PVE's RRD shows
// for it too (only its config values).
func (g *simGuest) ranAt(t time.Time) bool {
	return g.running && !t.Before(g.firstStart)
}

// moveTo places g on node from time at.
func (g *simGuest) moveTo(node string, at time.Time) {
	g.history = append(g.history, placement{until: at, node: g.node})
	g.node = node
}

// now reads the clock and settles tasks that have finished by then. Callers hold s.mu.
func (s *Simulator) now() time.Time {
	t := s.clock.Now()
	s.settle(t)
	return t
}

// Now returns the simulated time.
func (s *Simulator) Now() time.Time { return s.clock.Now() }

// GuestNode reports where a guest is now, whether it is locked, and whether it exists; tests use it.
func (s *Simulator) GuestNode(vmid int) (node, lock string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	g := s.guestByID[vmid]
	if g == nil {
		return "", "", false
	}
	return g.node, g.lock, true
}
