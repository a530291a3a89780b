package pve

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Part names a slower-changing piece of the Inventory that is cached with its own TTL. /cluster/resources and
// /nodes/{node}/status are not parts: every round reads them.
type Part uint16

const (
	PartClusterStatus Part = 1 << iota // /cluster/status: quorum and members
	PartVersion                        // /version
	PartHA                             // /cluster/ha/resources + /cluster/ha/status/current
	PartTasks                          // /cluster/tasks
	PartStorage                        // /nodes/{node}/storage
	PartConfigs                        // /nodes/{node}/{qemu|lxc}/{vmid}/config
	PartSubscription                   // /nodes/{node}/subscription
	PartReplication                    // /nodes/{node}/replication
	PartBackup                         // /cluster/backup-info/not-backed-up
	PartNodePressure                   // /nodes/{node}/rrddata (PSI; PVE 9)
	PartGuestPressure                  // /nodes/{node}/qemu + /nodes/{node}/lxc (guest PSI; PVE 9)
	PartQDevice                        // /cluster/config/qdevice

	// DefaultParts is everything except the pressure parts, which cost one (node) and two (guests) more calls
	// per node and TTL. Both are skipped once /version says the cluster runs PVE 8 or older, which has no PSI.
	DefaultParts = PartClusterStatus | PartVersion | PartHA | PartTasks | PartStorage | PartConfigs |
		PartSubscription | PartReplication | PartBackup | PartQDevice
	AllParts = DefaultParts | PartNodePressure | PartGuestPressure
)

var partNames = []struct {
	p    Part
	name string
}{
	{PartClusterStatus, "cluster-status"}, {PartVersion, "version"}, {PartHA, "ha"}, {PartTasks, "tasks"},
	{PartStorage, "storage"}, {PartConfigs, "configs"}, {PartSubscription, "subscription"},
	{PartReplication, "replication"}, {PartBackup, "backup"}, {PartNodePressure, "node-pressure"},
	{PartGuestPressure, "guest-pressure"}, {PartQDevice, "qdevice"},
}

func (p Part) String() string {
	var names []string
	for _, pn := range partNames {
		if p&pn.p != 0 {
			names = append(names, pn.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// ParsePart reads a part name as String writes it ("tasks", "cluster-status|ha").
func ParsePart(s string) (Part, error) {
	var p Part
	for _, name := range strings.Split(s, "|") {
		found := false
		for _, pn := range partNames {
			if pn.name == strings.TrimSpace(name) {
				p |= pn.p
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown inventory part %q", name)
		}
	}
	return p, nil
}

// TTLs say how long each cached part is reused. A guest config is also refetched as soon as the guest's entry in
// /cluster/resources changes (node, status, maxmem, maxcpu, maxdisk, lock, tags).
type TTLs struct {
	ClusterStatus time.Duration
	Version       time.Duration
	HA            time.Duration
	Tasks         time.Duration
	Storage       time.Duration
	Configs       time.Duration
	Subscription  time.Duration
	Replication   time.Duration
	Backup        time.Duration
	NodePressure  time.Duration
	GuestPressure time.Duration
	QDevice       time.Duration
}

// DefaultTTLs suit a 15-30s scrape interval: quorum and tasks stay within a scrape or two of the truth (a
// balancer that acts on them asks for them fresh), configs and storage definitions change rarely. The QDevice's
// state is a quorum signal too (a lost QDevice costs a two-node cluster its tie-breaking vote), so it is read
// as often as the cluster status: one cheap call per 30s.
func DefaultTTLs() TTLs {
	return TTLs{
		ClusterStatus: 30 * time.Second,
		Version:       time.Hour,
		HA:            time.Minute,
		Tasks:         30 * time.Second,
		Storage:       5 * time.Minute,
		Configs:       10 * time.Minute,
		Subscription:  time.Hour,
		Replication:   5 * time.Minute,
		Backup:        time.Hour,
		NodePressure:  time.Minute,
		GuestPressure: time.Minute,
		QDevice:       30 * time.Second,
	}
}

func (t TTLs) of(p Part) time.Duration {
	switch p {
	case PartClusterStatus:
		return t.ClusterStatus
	case PartVersion:
		return t.Version
	case PartHA:
		return t.HA
	case PartTasks:
		return t.Tasks
	case PartStorage:
		return t.Storage
	case PartConfigs:
		return t.Configs
	case PartSubscription:
		return t.Subscription
	case PartReplication:
		return t.Replication
	case PartBackup:
		return t.Backup
	case PartGuestPressure:
		return t.GuestPressure
	case PartQDevice:
		return t.QDevice
	default:
		return t.NodePressure
	}
}

// InventoryOptions tune one Inventory call.
type InventoryOptions struct {
	// Parts to include; zero means DefaultParts (for a Snapshotter: its configured parts).
	Parts Part
	// Fresh parts are read from the API in this round even when their cache is young, e.g. PartTasks and
	// PartClusterStatus right before a migration.
	Fresh Part
}

// SnapshotterConfig configures a Snapshotter. Zero values take defaults.
type SnapshotterConfig struct {
	// MaxAge: a call within MaxAge of the last completed round gets that round's Inventory without any API
	// call, unless it asks for Fresh parts. Default 0 (every call runs a round; concurrent calls still share one).
	MaxAge time.Duration
	// Parts to include (default DefaultParts).
	Parts Part
	// TTLs per part; a zero field takes its default from DefaultTTLs.
	TTLs TTLs
	// RoundTimeout bounds one round, which runs on behalf of every caller waiting for it (default 60s).
	RoundTimeout time.Duration
}

// Snapshotter assembles Inventories at a steady-state cost of 1 + (online nodes) API calls per round:
// /cluster/resources and /nodes/{node}/status, everything else from caches refreshed when their TTL runs out.
// Concurrent callers share one round; it is safe for concurrent use. Returned Inventories are shared between
// callers and must be treated as read-only.
type Snapshotter struct {
	c      *Client
	cfg    SnapshotterConfig
	now    func() time.Time
	forced bool // every part is stale: the uncached Client.Inventory

	mu      sync.Mutex
	cache   cacheState
	last    *Inventory
	flights map[Part]*flight
	// online are the nodes online in the last round: the next round asks for their status without waiting
	// for /cluster/resources.
	online []string
}

type flight struct {
	done chan struct{}
	inv  *Inventory
	err  error
}

// NewSnapshotter returns a caching Inventory source over c.
func NewSnapshotter(c *Client, cfg SnapshotterConfig) *Snapshotter {
	def := DefaultTTLs()
	t := &cfg.TTLs
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&t.ClusterStatus, def.ClusterStatus}, {&t.Version, def.Version}, {&t.HA, def.HA}, {&t.Tasks, def.Tasks},
		{&t.Storage, def.Storage}, {&t.Configs, def.Configs}, {&t.Subscription, def.Subscription},
		{&t.Replication, def.Replication}, {&t.Backup, def.Backup}, {&t.NodePressure, def.NodePressure},
		{&t.GuestPressure, def.GuestPressure}, {&t.QDevice, def.QDevice},
	} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if cfg.Parts == 0 {
		cfg.Parts = DefaultParts
	}
	if cfg.RoundTimeout == 0 {
		cfg.RoundTimeout = time.Minute
	}
	return &Snapshotter{c: c, cfg: cfg, now: time.Now, flights: map[Part]*flight{}}
}

// InventorySource is what consumers of the cluster state need: *Client (uncached) and *Snapshotter (cached)
// provide it, and tests can fake it.
type InventorySource interface {
	Inventory(ctx context.Context, opts InventoryOptions) (*Inventory, error)
}

var (
	_ InventorySource = (*Client)(nil)
	_ InventorySource = (*Snapshotter)(nil)
)

// Inventory reads the whole cluster without any cache: every included part is fetched. Prefer a Snapshotter for
// anything that runs repeatedly.
func (c *Client) Inventory(ctx context.Context, opts InventoryOptions) (*Inventory, error) {
	s := NewSnapshotter(c, SnapshotterConfig{Parts: opts.Parts})
	s.forced = true
	return s.round(ctx, 0)
}

// Inventory returns a snapshot: the last one if younger than MaxAge (and no Fresh parts are asked for), the one
// being assembled if a round is in flight, else a new one. Only a failure of /cluster/resources is an error;
// other failures are listed in Inventory.Partial, with the last good value of that part kept where there is one.
func (s *Snapshotter) Inventory(ctx context.Context, opts InventoryOptions) (*Inventory, error) {
	key := opts.Fresh & s.cfg.Parts
	s.mu.Lock()
	if key == 0 && s.last != nil && s.cfg.MaxAge > 0 && s.now().Sub(s.last.FetchedAt) < s.cfg.MaxAge {
		inv := s.last
		s.mu.Unlock()
		return inv, nil
	}
	f, ok := s.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		s.flights[key] = f
		// The round serves every waiter, so it must not die with the caller that happened to start it. It
		// does end by that caller's deadline, though: requests still running then (a slow node) are recorded
		// as failed and the round returns what it has, so that one slow node costs its own data rather than
		// the caller's whole snapshot.
		deadline := time.Now().Add(s.cfg.RoundTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			// A little before, so that the result reaches the caller before it stops waiting.
			deadline = d.Add(-min(time.Until(d)/10, 250*time.Millisecond))
		}
		rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		go func() {
			defer cancel()
			f.inv, f.err = s.round(rctx, key)
			s.mu.Lock()
			delete(s.flights, key)
			if f.err == nil && (s.last == nil || !f.inv.FetchedAt.Before(s.last.FetchedAt)) {
				s.last = f.inv
			}
			s.mu.Unlock()
			close(f.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.inv, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for PVE inventory: %w", ctx.Err())
	}
}

// cached is one cached value with the time it was read.
type cached[T any] struct {
	val T
	at  time.Time
	ok  bool
}

func (c *cached[T]) set(v T, at time.Time) { c.val, c.at, c.ok = v, at, true }

type nodeCache struct {
	storage      cached[[]Storage]
	subscription cached[*Subscription]
	replication  cached[[]ReplicationJob]
	pressure     cached[*Pressure]
	guestPSI     cached[map[string]*Pressure] // by guest id, of the guests on this node
}

type configEntry struct {
	cfg *GuestConfig
	at  time.Time
	fp  guestFingerprint
}

// guestFingerprint is what /cluster/resources shows of a guest that a config change or a move would alter.
type guestFingerprint struct {
	node, status, lock, tags string
	maxmem, maxdisk          uint64
	maxcpu                   float64
}

func fingerprint(g *Guest) guestFingerprint {
	return guestFingerprint{
		node: g.Node, status: g.Status, lock: g.Lock, tags: strings.Join(g.Tags, ";"),
		maxmem: g.MemMax, maxdisk: g.DiskMax, maxcpu: g.CPUs,
	}
}

type cacheState struct {
	clusterStatus cached[*ClusterStatus]
	version       cached[*Version]
	ha            cached[HAStatus]
	tasks         cached[[]Task]
	backup        cached[[]string]
	qdevice       cached[*QDevice] // ok with a nil value: read, none configured
	nodes         map[string]*nodeCache
	configs       map[string]*configEntry
}

func (s *Snapshotter) node(name string) *nodeCache {
	if s.cache.nodes == nil {
		s.cache.nodes = map[string]*nodeCache{}
	}
	nc, ok := s.cache.nodes[name]
	if !ok {
		nc = &nodeCache{}
		s.cache.nodes[name] = nc
	}
	return nc
}

// due reports whether a cached part must be read in this round.
func (s *Snapshotter) due(p Part, fresh Part, at time.Time, ok bool, now time.Time) bool {
	if s.cfg.Parts&p == 0 {
		return false
	}
	return s.forced || fresh&p != 0 || !ok || now.Sub(at) >= s.cfg.TTLs.of(p)
}

// fetcher runs the requests of one round concurrently, at most perNode at a time against any one node and
// at most cap(all) in total, and collects failures.
type fetcher struct {
	wg      sync.WaitGroup
	all     chan struct{}
	sems    map[string]chan struct{}
	perNode int
	mu      sync.Mutex
	partial []FetchError
}

// goNode runs fn for a request to endpoint on node; a round that ends before fn gets its turn records endpoint
// as failed.
func (f *fetcher) goNode(ctx context.Context, node, endpoint string, fn func(context.Context)) {
	sem, ok := f.sems[node]
	if !ok {
		sem = make(chan struct{}, f.perNode)
		f.sems[node] = sem
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if !acquire(ctx, sem) {
			f.fail(endpoint, node, ctx.Err())
			return
		}
		defer func() { <-sem }()
		if !acquire(ctx, f.all) {
			f.fail(endpoint, node, ctx.Err())
			return
		}
		defer func() { <-f.all }()
		fn(ctx)
	}()
}

func (f *fetcher) goCluster(ctx context.Context, endpoint string, fn func(context.Context)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if !acquire(ctx, f.all) {
			f.fail(endpoint, "", ctx.Err())
			return
		}
		defer func() { <-f.all }()
		fn(ctx)
	}()
}

// acquire takes a slot of sem unless ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f *fetcher) fail(endpoint, node string, err error) {
	f.mu.Lock()
	f.partial = append(f.partial, FetchError{Endpoint: endpoint, Node: node, Err: err})
	f.mu.Unlock()
}

// round reads /cluster/resources and node statuses, then every due part concurrently, updates the caches and
// assembles the Inventory.
func (s *Snapshotter) round(ctx context.Context, fresh Part) (*Inventory, error) {
	f := &fetcher{all: make(chan struct{}, s.c.maxConc), sems: map[string]chan struct{}{}, perNode: s.c.perNode}
	// Node statuses do not wait for /cluster/resources, the one large answer of a round: the nodes online in
	// the last round are asked at once, which takes their round trips off the critical path. The resources
	// then say which nodes are online now: one that came online is asked then; the request to one that went
	// offline meanwhile is cancelled and its error dropped.
	var statusMu sync.Mutex
	statusOf := map[string]*NodeStatus{}
	asked := map[string]context.CancelFunc{}
	cancelAll := func() {
		for _, cancel := range asked {
			cancel()
		}
	}
	defer cancelAll()
	ask := func(node string) {
		nodeCtx, cancel := context.WithCancel(ctx)
		asked[node] = cancel
		endpoint := nodePath(node, "/status")
		f.goNode(nodeCtx, node, endpoint, func(ctx context.Context) {
			st, err := s.c.NodeStatus(ctx, node)
			if err != nil {
				f.fail(endpoint, node, err)
				return
			}
			statusMu.Lock()
			statusOf[node] = st
			statusMu.Unlock()
		})
	}
	s.mu.Lock()
	expected := s.online
	s.mu.Unlock()
	for _, node := range expected {
		ask(node)
	}

	res, err := s.c.ClusterResources(ctx)
	if err != nil {
		cancelAll()
		f.wg.Wait()
		return nil, fmt.Errorf("reading PVE inventory: %w", err)
	}
	now := s.now()
	online := make([]string, 0, len(res.Nodes))
	isOnline := make(map[string]bool, len(res.Nodes))
	for _, n := range res.Nodes {
		if n.Online {
			online = append(online, n.Name)
			isOnline[n.Name] = true
			if asked[n.Name] == nil {
				ask(n.Name)
			}
		}
	}
	for node, cancel := range asked {
		if !isOnline[node] {
			cancel()
		}
	}

	s.mu.Lock()
	plan := s.plan(res, online, fresh, now)
	s.mu.Unlock()
	s.fetchParts(ctx, f, plan)
	f.wg.Wait()

	statuses := make([]*NodeStatus, len(online))
	for i, node := range online {
		statuses[i] = statusOf[node]
	}
	partial := f.partial[:0]
	for _, p := range f.partial {
		if p.Node == "" || isOnline[p.Node] || p.Endpoint != nodePath(p.Node, "/status") {
			partial = append(partial, p)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.online = online
	s.store(plan, now, f)
	inv := s.assemble(res, online, statuses)
	inv.Partial = partial
	sort.Slice(inv.Partial, func(i, j int) bool { return inv.Partial[i].Endpoint < inv.Partial[j].Endpoint })
	inv.FetchedAt = s.now()
	return inv, nil
}

// roundPlan lists what a round reads besides resources and node statuses, and receives the results.
type roundPlan struct {
	clusterStatus, version, ha, tasks, backup, qdevice bool
	storage, subscription, replication                 []string // nodes
	pressure, guestPressure                            []string
	configs                                            []*Guest

	// results
	clusterStatusVal cached[*ClusterStatus]
	versionVal       cached[*Version]
	haVal            *HAStatus
	tasksVal         cached[[]Task]
	backupVal        cached[[]string]
	qdeviceVal       cached[*QDevice]
	storageVal       map[string][]Storage
	subscriptionVal  map[string]*Subscription
	replicationVal   map[string][]ReplicationJob
	pressureVal      map[string]*Pressure
	guestPSIVal      map[string]map[string]*Pressure
	configVal        map[string]*GuestConfig
	mu               sync.Mutex
}

// plan decides, under s.mu, which parts are due.
func (s *Snapshotter) plan(res *Resources, online []string, fresh Part, now time.Time) *roundPlan {
	c := &s.cache
	p := &roundPlan{
		clusterStatus:   s.due(PartClusterStatus, fresh, c.clusterStatus.at, c.clusterStatus.ok, now),
		version:         s.due(PartVersion, fresh, c.version.at, c.version.ok, now),
		ha:              s.due(PartHA, fresh, c.ha.at, c.ha.ok, now),
		tasks:           s.due(PartTasks, fresh, c.tasks.at, c.tasks.ok, now),
		backup:          s.due(PartBackup, fresh, c.backup.at, c.backup.ok, now),
		qdevice:         s.due(PartQDevice, fresh, c.qdevice.at, c.qdevice.ok, now),
		storageVal:      map[string][]Storage{},
		subscriptionVal: map[string]*Subscription{},
		replicationVal:  map[string][]ReplicationJob{},
		pressureVal:     map[string]*Pressure{},
		guestPSIVal:     map[string]map[string]*Pressure{},
		configVal:       map[string]*GuestConfig{},
	}
	// PVE 8 and older report no PSI: asking would cost calls for nothing.
	noPSI := c.version.ok && !hasPSI(c.version.val.Version)
	for _, node := range online {
		nc := s.node(node)
		if s.due(PartStorage, fresh, nc.storage.at, nc.storage.ok, now) {
			p.storage = append(p.storage, node)
		}
		if s.due(PartSubscription, fresh, nc.subscription.at, nc.subscription.ok, now) {
			p.subscription = append(p.subscription, node)
		}
		if s.due(PartReplication, fresh, nc.replication.at, nc.replication.ok, now) {
			p.replication = append(p.replication, node)
		}
		if noPSI {
			continue
		}
		if s.due(PartNodePressure, fresh, nc.pressure.at, nc.pressure.ok, now) {
			p.pressure = append(p.pressure, node)
		}
		if s.due(PartGuestPressure, fresh, nc.guestPSI.at, nc.guestPSI.ok, now) {
			p.guestPressure = append(p.guestPressure, node)
		}
	}
	if s.cfg.Parts&PartConfigs != 0 {
		isOnline := make(map[string]bool, len(online))
		for _, n := range online {
			isOnline[n] = true
		}
		for i := range res.Guests {
			g := &res.Guests[i]
			if !isOnline[g.Node] {
				continue
			}
			id := g.ID()
			e := c.configs[id]
			if e == nil || e.fp != fingerprint(g) || s.due(PartConfigs, fresh, e.at.Add(-spread(id, s.cfg.TTLs.Configs)), true, now) {
				p.configs = append(p.configs, g)
			}
		}
	}
	return p
}

// spread shortens a guest's config TTL by up to a quarter, the same amount for the same guest every time, so
// that configs fetched together in the first round expire at different times instead of all in one round.
func spread(id string, ttl time.Duration) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return time.Duration(int64(ttl/4) * int64(h.Sum32()%1024) / 1024)
}

func (s *Snapshotter) fetchParts(ctx context.Context, f *fetcher, p *roundPlan) {
	c := s.c
	clusterPart(ctx, f, p.clusterStatus, "/cluster/status", c.ClusterStatus, &p.clusterStatusVal)
	clusterPart(ctx, f, p.version, "/version", c.Version, &p.versionVal)
	if p.ha {
		f.goCluster(ctx, "/cluster/ha/resources", func(ctx context.Context) {
			res, rerr := c.HAResources(ctx)
			st, se := c.HAStatusCurrent(ctx)
			if rerr != nil {
				f.fail("/cluster/ha/resources", "", rerr)
			}
			if se != nil {
				f.fail("/cluster/ha/status/current", "", se)
			}
			if rerr == nil && se == nil {
				ha := mergeHA(res, st)
				p.haVal = &ha
			}
		})
	}
	clusterPart(ctx, f, p.tasks, "/cluster/tasks", c.Tasks, &p.tasksVal)
	clusterPart(ctx, f, p.backup, "/cluster/backup-info/not-backed-up", c.NotBackedUp, &p.backupVal)
	clusterPart(ctx, f, p.qdevice, "/cluster/config/qdevice", c.QDevice, &p.qdeviceVal)
	perNode(ctx, f, p, p.storage, "/storage", c.NodeStorage, p.storageVal)
	perNode(ctx, f, p, p.subscription, "/subscription", c.Subscription, p.subscriptionVal)
	perNode(ctx, f, p, p.replication, "/replication", c.Replication, p.replicationVal)
	pressure := func(ctx context.Context, node string) (*Pressure, error) {
		points, err := c.NodeRRD(ctx, node, "hour")
		return latestPressure(points), err
	}
	perNode(ctx, f, p, p.pressure, "/rrddata", pressure, p.pressureVal)
	for _, node := range p.guestPressure {
		f.goNode(ctx, node, nodePath(node, "/qemu"), func(ctx context.Context) {
			psi := map[string]*Pressure{}
			for _, t := range []GuestType{TypeQEMU, TypeLXC} {
				guests, err := c.NodeGuests(ctx, node, t)
				if err != nil {
					f.fail(nodePath(node, "/", string(t)), node, err)
					return
				}
				for i := range guests {
					if guests[i].PSI != nil {
						psi[guests[i].ID()] = guests[i].PSI
					}
				}
			}
			p.mu.Lock()
			p.guestPSIVal[node] = psi
			p.mu.Unlock()
		})
	}
	for _, g := range p.configs {
		ref := g.Ref()
		endpoint, _ := ref.path("/config") // a guest from /cluster/resources has a valid address
		f.goNode(ctx, g.Node, endpoint, func(ctx context.Context) {
			v, err := c.GuestConfig(ctx, ref)
			if err != nil {
				f.fail(endpoint, ref.Node, err)
				return
			}
			p.mu.Lock()
			p.configVal[ref.ID()] = v
			p.mu.Unlock()
		})
	}
}

// clusterPart reads one cluster-wide part into result when due.
func clusterPart[T any](ctx context.Context, f *fetcher, due bool, endpoint string,
	get func(context.Context) (T, error), result *cached[T]) {
	if !due {
		return
	}
	f.goCluster(ctx, endpoint, func(ctx context.Context) {
		v, err := get(ctx)
		if err != nil {
			f.fail(endpoint, "", err)
			return
		}
		result.val, result.ok = v, true
	})
}

// perNode reads one per-node part from each of nodes into results.
func perNode[T any](ctx context.Context, f *fetcher, p *roundPlan, nodes []string, suffix string,
	get func(context.Context, string) (T, error), results map[string]T) {
	for _, node := range nodes {
		endpoint := nodePath(node, suffix)
		f.goNode(ctx, node, endpoint, func(ctx context.Context) {
			v, err := get(ctx, node)
			if err != nil {
				f.fail(endpoint, node, err)
				return
			}
			p.mu.Lock()
			results[node] = v
			p.mu.Unlock()
		})
	}
}

// store writes the round's results into the caches (under s.mu) and marks failures whose old value is kept.
func (s *Snapshotter) store(p *roundPlan, at time.Time, f *fetcher) {
	c := &s.cache
	if p.clusterStatusVal.ok {
		c.clusterStatus.set(p.clusterStatusVal.val, at)
	}
	if p.versionVal.ok {
		c.version.set(p.versionVal.val, at)
	}
	if p.haVal != nil {
		c.ha.set(*p.haVal, at)
	}
	if p.tasksVal.ok {
		c.tasks.set(p.tasksVal.val, at)
	}
	if p.backupVal.ok {
		c.backup.set(p.backupVal.val, at)
	}
	if p.qdeviceVal.ok {
		c.qdevice.set(p.qdeviceVal.val, at)
	}
	for node, v := range p.storageVal {
		s.node(node).storage.set(v, at)
	}
	for node, v := range p.subscriptionVal {
		s.node(node).subscription.set(v, at)
	}
	for node, v := range p.replicationVal {
		s.node(node).replication.set(v, at)
	}
	for node, v := range p.pressureVal {
		s.node(node).pressure.set(v, at)
	}
	for node, v := range p.guestPSIVal {
		s.node(node).guestPSI.set(v, at)
	}
	if c.configs == nil {
		c.configs = map[string]*configEntry{}
	}
	for _, g := range p.configs {
		if v, ok := p.configVal[g.ID()]; ok {
			c.configs[g.ID()] = &configEntry{cfg: v, at: at, fp: fingerprint(g)}
		}
	}
	for i := range f.partial {
		fe := &f.partial[i]
		fe.Stale = s.hasCached(fe)
	}
}

// hasCached reports whether an older value stands in for a failed read.
func (s *Snapshotter) hasCached(fe *FetchError) bool {
	c := &s.cache
	switch {
	case fe.Endpoint == "/cluster/status":
		return c.clusterStatus.ok
	case fe.Endpoint == "/version":
		return c.version.ok
	case strings.HasPrefix(fe.Endpoint, "/cluster/ha/"):
		return c.ha.ok
	case fe.Endpoint == "/cluster/tasks":
		return c.tasks.ok
	case fe.Endpoint == "/cluster/backup-info/not-backed-up":
		return c.backup.ok
	case fe.Endpoint == "/cluster/config/qdevice":
		return c.qdevice.ok
	}
	nc := c.nodes[fe.Node]
	if nc == nil {
		return false
	}
	switch {
	case strings.HasSuffix(fe.Endpoint, "/storage"):
		return nc.storage.ok
	case strings.HasSuffix(fe.Endpoint, "/subscription"):
		return nc.subscription.ok
	case strings.HasSuffix(fe.Endpoint, "/replication"):
		return nc.replication.ok
	case strings.HasSuffix(fe.Endpoint, "/rrddata"):
		return nc.pressure.ok
	case strings.HasSuffix(fe.Endpoint, "/qemu"), strings.HasSuffix(fe.Endpoint, "/lxc"):
		return nc.guestPSI.ok
	case strings.HasSuffix(fe.Endpoint, "/config"):
		id := strings.TrimPrefix(fe.Endpoint, nodePath(fe.Node, "/"))
		return c.configs[strings.TrimSuffix(id, "/config")] != nil
	}
	return false
}

// assemble builds the Inventory from this round's resources and statuses and the caches (under s.mu).
func (s *Snapshotter) assemble(res *Resources, online []string, statuses []*NodeStatus) *Inventory {
	c := &s.cache
	inv := &Inventory{}
	if v := c.clusterStatus.val; c.clusterStatus.ok {
		inv.Cluster = v.Cluster
	}
	if v := c.version.val; c.version.ok {
		inv.Cluster.PVEVersion, inv.Cluster.Release, inv.Cluster.RepoID = v.Version, v.Release, v.RepoID
	}

	// Nodes: /cluster/resources, completed by /cluster/status and this round's node statuses.
	inv.Nodes = make([]Node, len(res.Nodes))
	copy(inv.Nodes, res.Nodes)
	byName := make(map[string]int, len(inv.Nodes))
	for i := range inv.Nodes {
		byName[inv.Nodes[i].Name] = i
	}
	if c.clusterStatus.ok {
		for _, m := range c.clusterStatus.val.Members {
			i, ok := byName[m.Name]
			if !ok {
				inv.Nodes = append(inv.Nodes, Node{Name: m.Name, Online: m.Online})
				i = len(inv.Nodes) - 1
				byName[m.Name] = i
			}
			n := &inv.Nodes[i]
			n.NodeID, n.Local, n.IP = m.NodeID, m.Local, m.IP
			if n.Level == "" {
				n.Level = m.Level
			}
		}
		sort.Slice(inv.Nodes, func(i, j int) bool { return inv.Nodes[i].Name < inv.Nodes[j].Name })
		for i := range inv.Nodes {
			byName[inv.Nodes[i].Name] = i
		}
	}
	if !c.clusterStatus.ok || inv.Cluster.NodeCount == 0 {
		inv.Cluster.NodeCount = len(inv.Nodes)
	}
	for i, node := range online {
		if statuses[i] != nil {
			statuses[i].apply(&inv.Nodes[byName[node]])
		}
	}
	// PSI read before /version said PVE 8 (the first round asks both at once) is not used.
	noPSI := c.version.ok && !hasPSI(c.version.val.Version)
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		if nc := c.nodes[n.Name]; nc != nil {
			if nc.subscription.ok {
				n.Subscription = nc.subscription.val
			}
			if nc.pressure.ok && !noPSI {
				n.PSI = nc.pressure.val
			}
		}
	}

	// Guests, with their cached configs; configs of guests that are gone are dropped.
	inv.Guests = make([]Guest, len(res.Guests))
	copy(inv.Guests, res.Guests)
	haManaged := map[string]bool{}
	if c.ha.ok {
		inv.HA = c.ha.val
		for _, r := range c.ha.val.Resources {
			haManaged[haGuestID(r)] = true
		}
	}
	seen := make(map[string]bool, len(inv.Guests))
	for i := range inv.Guests {
		g := &inv.Guests[i]
		id := g.ID()
		seen[id] = true
		if e := c.configs[id]; e != nil {
			g.Config = e.cfg
		}
		if nc := c.nodes[g.Node]; nc != nil && nc.guestPSI.ok && !noPSI && g.Status == "running" {
			g.PSI = nc.guestPSI.val[id] // nil for a guest that moved here since the list was read
		}
		if haManaged[id] {
			g.HAManaged = true
		}
	}
	for id := range c.configs {
		if !seen[id] {
			delete(c.configs, id)
		}
	}

	inv.Storages = mergeStorages(res.Storages, c.nodes)
	if c.tasks.ok {
		inv.Tasks = c.tasks.val
	}
	if c.backup.ok {
		inv.NotBackedUp = c.backup.val
	}
	if c.qdevice.ok {
		inv.QDevice = c.qdevice.val
	}
	names := make([]string, 0, len(c.nodes))
	for name := range c.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, member := byName[name]; !member {
			delete(c.nodes, name) // a node that left the cluster
			continue
		}
		if nc := c.nodes[name]; nc.replication.ok {
			inv.Replication = append(inv.Replication, nc.replication.val...)
		}
	}
	return inv
}

// haGuestID maps an HA sid ("vm:100", "ct:101") to a guest id ("qemu/100", "lxc/101").
func haGuestID(r HAResource) string {
	t := "qemu"
	if r.Type == "ct" {
		t = "lxc"
	}
	return t + "/" + itoa(r.VMID)
}

// mergeStorages takes usage from /cluster/resources (read every round) and the definition (enabled, active,
// avail) from the per-node cache; storages only the node lists (disabled ones) are added.
func mergeStorages(fromResources []Storage, nodes map[string]*nodeCache) []Storage {
	out := make([]Storage, len(fromResources))
	copy(out, fromResources)
	index := make(map[string]int, len(out))
	for i := range out {
		index[out[i].ID()] = i
	}
	for node, nc := range nodes {
		if !nc.storage.ok {
			continue
		}
		for _, ns := range nc.storage.val {
			ns.Node = node
			i, ok := index[ns.ID()]
			if !ok {
				out = append(out, ns)
				index[ns.ID()] = len(out) - 1
				continue
			}
			s := &out[i]
			s.Enabled = ns.Enabled
			if s.Type == "" {
				s.Type = ns.Type
			}
			if ns.Avail > 0 && s.Total == ns.Total {
				s.Avail = ns.Avail
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Storage < out[j].Storage
	})
	return out
}

// hasPSI reports whether a PVE version reports pressure stall information (9.0 and later).
func hasPSI(version string) bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err != nil || n >= 9 // an unparseable version is asked, not assumed old
}
