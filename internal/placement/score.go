package placement

// nodeView is what scorers read: a node's utilisation ratios, possibly with a unit added or removed.
type nodeView struct {
	// cpuBlend is the window blend of CPU use / CPUs; cpuPeak the PeakQuantile of the CPU series / CPUs;
	// mem is max(current, p95) memory / memory; io the window blend of iowait.
	cpuBlend, cpuPeak, mem, io float64
	// memPeak is the PeakQuantile of memory / memory (the memory filter's input).
	memPeak float64
}

// scorer is a soft preference: it turns a node view into penalty points (0 below its threshold or, for the
// balance scorers, at or below the cluster's ideal load).
type scorer interface {
	Name() string
	Score(m *model, v nodeView) PluginScore
}

type cpuScorer struct{}
type cpuPeakScorer struct{}
type memoryScorer struct{}
type ioWaitScorer struct{}
type cpuBalanceScorer struct{}
type memoryBalanceScorer struct{}

var (
	_ scorer = cpuScorer{}
	_ scorer = cpuPeakScorer{}
	_ scorer = memoryScorer{}
	_ scorer = ioWaitScorer{}
	_ scorer = cpuBalanceScorer{}
	_ scorer = memoryBalanceScorer{}
)

func (cpuScorer) Name() string { return "cpu" }
func (s cpuScorer) Score(m *model, v nodeView) PluginScore {
	return thresholdScore(s.Name(), v.cpuBlend, m.pol.Thresholds.CPU, m.pol.Weights.CPU)
}

func (cpuPeakScorer) Name() string { return "cpu-peak" }
func (s cpuPeakScorer) Score(m *model, v nodeView) PluginScore {
	return thresholdScore(s.Name(), v.cpuPeak, m.pol.Thresholds.CPU, m.pol.Weights.CPUPeak)
}

func (memoryScorer) Name() string { return "memory" }
func (s memoryScorer) Score(m *model, v nodeView) PluginScore {
	return thresholdScore(s.Name(), v.mem, m.pol.Thresholds.Memory, m.pol.Weights.Memory)
}

func (ioWaitScorer) Name() string { return "iowait" }
func (s ioWaitScorer) Score(m *model, v nodeView) PluginScore {
	return thresholdScore(s.Name(), v.io, m.pol.Thresholds.IOWait, m.pol.Weights.IOWait)
}

func thresholdScore(name string, value, threshold, weight float64) PluginScore {
	return PluginScore{Plugin: name, Value: value, Reference: threshold, Points: weight * penalty(value, threshold)}
}

// cpuBalanceScorer scores a node whose Load (max of CPU and memory p95 ratios) is CPU-bound for that Load
// above the cluster's ideal Load (see model.idealLoad); memoryBalanceScorer likewise when the Load is
// memory-bound. One of the two is always 0: the breakdown says which resource makes the node hotter than its
// fair share, and the points follow the figure the operator sees (Plan.Before.HottestLoad).
func (cpuBalanceScorer) Name() string { return "cpu-balance" }
func (s cpuBalanceScorer) Score(m *model, v nodeView) PluginScore {
	return m.balanceScore(s.Name(), v.cpuPeak, v.cpuPeak >= v.memPeak, m.pol.Thresholds.CPU)
}

func (memoryBalanceScorer) Name() string { return "memory-balance" }
func (s memoryBalanceScorer) Score(m *model, v nodeView) PluginScore {
	return m.balanceScore(s.Name(), v.memPeak, v.memPeak > v.cpuPeak, m.pol.Thresholds.Memory)
}

// balanceScore scores value against the ideal Load when it is the node's Load (bound) and balancing is on.
func (m *model) balanceScore(name string, value float64, bound bool, threshold float64) PluginScore {
	ps := PluginScore{Plugin: name, Value: value, Reference: m.idealLoad()}
	if m.balance && bound {
		ps.Points = m.pol.Weights.Balance * excess(value, ps.Reference, threshold)
	}
	return ps
}

// idealLoad is the lowest hottest Load a perfect placement could reach, near enough: the larger of the ideal
// CPU and memory ratios. A node's resource below it costs nothing even when that resource is unevenly spread
// (memory at 40 % next to an ideal of 30 % does not matter while CPU sits at 85 %).
func (m *model) idealLoad() float64 { return max(m.idealCPU, m.idealMem) }

// excess maps a node's load ratio x to points for being above the cluster's ideal ratio ideal: 100 points per
// unit of relative excess (x−ideal)/ideal, so a node 15 % busier than its fair share scores 15 points, the
// default MinImprovement. The denominator never drops below half the resource's threshold: in a cluster that
// idle nothing is at stake, and a few points of load are not "twice as busy" (a node at 6 % next to an ideal
// of 3 %). The term is linear above the ideal and 0 at or below it: moving load from a node above the ideal
// to one that stays at or below it lowers the pair's points by the relative load moved, so the progress
// guard (the pair must drop by MinImprovement/5) and the potential argument (the sum of all scores strictly
// decreases, the ideal being fixed) hold unchanged.
func excess(x, ideal, threshold float64) float64 {
	if x <= ideal {
		return 0
	}
	return 100 * (x - ideal) / max(ideal, threshold/2)
}

// scorers is the fixed, ordered list of scorers (the order of Score.Plugins). The balance scorers are last
// and score 0 outside rebalance.
var scorers = [...]scorer{cpuScorer{}, cpuPeakScorer{}, memoryScorer{}, ioWaitScorer{}, cpuBalanceScorer{}, memoryBalanceScorer{}}

// Plugin indexes in Score.Plugins.
const (
	pluginCPU = iota
	pluginCPUPeak
	pluginMemory
	pluginIOWait
	pluginCPUBalance
	pluginMemoryBalance
)

// penalty maps a utilisation ratio x to points: 0 up to the threshold t (a dead band: nodes under thresholds
// are no reason to move by themselves), then 100·(u+u²)/2 with u = (x−t)/(1−t), so a fully used resource
// costs 100 points and more beyond. The penalty is continuous and convex: halving an excess is worth more
// than moving it whole, so load spreads instead of shifting a hot spot, and two nodes a little over a
// threshold score less than one node far over it. (An earlier version added a step of 10 points at the
// threshold; that made the sum of scores prefer one node far over to two just over — e.g. 72 % / 59 % / 59 %
// over 66 % / 66 % / 66 % — the opposite of spreading.) Hysteresis comes from the dead band and
// Policy.MinImprovement: one resource a few points over its threshold scores a few points and does not move a
// guest; a move must leave the target clearly below where the source was.
func penalty(x, t float64) float64 {
	if x <= t {
		return 0
	}
	u := (x - t) / (1 - t)
	return 100 * (u + u*u) / 2
}

// score runs every scorer on v.
func (m *model) score(v nodeView) Score {
	s := Score{Plugins: make([]PluginScore, len(scorers))}
	for i, sc := range scorers {
		s.Plugins[i] = sc.Score(m, v)
		s.Total += s.Plugins[i].Points
	}
	return s
}

// total is score(v).Total without allocating.
func (m *model) total(v nodeView) float64 {
	var t float64
	for _, sc := range scorers {
		t += sc.Score(m, v).Points
	}
	return t
}

// view is n as it is now in the simulation.
func (m *model) view(n *nodeM) nodeView {
	return nodeView{
		cpuBlend: n.cpuW.blend(m.pol.Windows) / n.cpus,
		cpuPeak:  n.cpuPeak / n.cpus,
		mem:      max(n.memCur, n.memPeak) / n.memBytes,
		memPeak:  n.memPeak / n.memBytes,
		io:       n.ioW.blend(m.pol.Windows),
	}
}

// viewWith is n with u added (sign +1) or removed (−1). With exact false an added unit's peaks are bounded
// from above (peak(n)+max(u)) and computed exactly only when the bound crosses a threshold, so points are
// exact either way but Values may be upper bounds.
func (m *model) viewWith(n *nodeM, u *unitM, sign float32, exact bool) nodeView {
	s := float64(sign)
	v := nodeView{
		cpuBlend: n.cpuW.plus(u.cpuW, s).blend(m.pol.Windows) / n.cpus,
		io:       n.ioW.plus(u.ioW, s).blend(m.pol.Windows),
	}
	memCur := n.memCur + s*u.memCur
	q := m.pol.PeakQuantile
	cpuLimit, memLimit := m.pointsFreeLimits()
	if sign > 0 && !exact && (n.cpuPeak+u.cpuHi)/n.cpus <= cpuLimit {
		v.cpuPeak = (n.cpuPeak + u.cpuHi) / n.cpus
	} else {
		v.cpuPeak = quantileCombined(n.cpu, u.cpu, sign, q, m.scratch) / n.cpus
	}
	var memPeak float64
	if sign > 0 && !exact && n.memPeak+u.memHi <= memLimit*n.memBytes {
		memPeak = n.memPeak + u.memHi
	} else {
		memPeak = quantileCombined(n.mem, u.mem, sign, q, m.scratch)
	}
	v.memPeak = memPeak / n.memBytes
	v.mem = max(memCur, memPeak) / n.memBytes
	return v
}

// pointsFreeLimits are the CPU and memory peak ratios up to which no scorer gives points and the memory
// filter passes: below them an upper bound of a peak scores exactly like the peak itself.
func (m *model) pointsFreeLimits() (cpu, mem float64) {
	cpu = m.pol.Thresholds.CPU
	mem = min(m.pol.Thresholds.Memory, 1-m.pol.MemoryHeadroom)
	if m.balance && m.pol.Weights.Balance > 0 {
		cpu, mem = min(cpu, m.idealLoad()), min(mem, m.idealLoad())
	}
	return cpu, mem
}

// lowerWith is a lower bound of n's view with u added, without any quantile: peaks grow by at least the
// unit's minimum (peak(n+u) ≥ peak(n)+min(u)); windows are exact. Penalties are monotone, so its total is a
// lower bound of the exact total.
func (m *model) lowerWith(n *nodeM, u *unitM) nodeView {
	v := nodeView{
		cpuBlend: n.cpuW.plus(u.cpuW, 1).blend(m.pol.Windows) / n.cpus,
		cpuPeak:  (n.cpuPeak + u.cpuLo) / n.cpus,
		io:       n.ioW.plus(u.ioW, 1).blend(m.pol.Windows),
		memPeak:  (n.memPeak + u.memLo) / n.memBytes,
	}
	v.mem = max(n.memCur+u.memCur, n.memPeak+u.memLo) / n.memBytes
	return v
}

// lowerWithout is a lower bound of n's view with u removed: peak(n−u) ≥ peak(n)−max(u).
func (m *model) lowerWithout(n *nodeM, u *unitM) nodeView {
	v := nodeView{
		cpuBlend: n.cpuW.plus(u.cpuW, -1).blend(m.pol.Windows) / n.cpus,
		cpuPeak:  (n.cpuPeak - u.cpuHi) / n.cpus,
		io:       n.ioW.plus(u.ioW, -1).blend(m.pol.Windows),
		memPeak:  (n.memPeak - u.memHi) / n.memBytes,
	}
	v.mem = max(n.memCur-u.memCur, n.memPeak-u.memHi) / n.memBytes
	return v
}
