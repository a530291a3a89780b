package placement

// nodeView is what scorers read: a node's utilisation ratios, possibly with a unit added or removed.
type nodeView struct {
	// cpuBlend is the window blend of CPU use / CPUs; cpuPeak the PeakQuantile of the CPU series / CPUs;
	// mem is max(current, p95) memory / memory; io the window blend of iowait.
	cpuBlend, cpuPeak, mem, io float64
	// memPeak is the PeakQuantile of memory / memory (the memory filter's input).
	memPeak float64
}

// scorer is a soft preference: it turns a node view into penalty points (0 below its threshold).
type scorer interface {
	Name() string
	Score(p *Policy, v nodeView) PluginScore
}

type cpuScorer struct{}
type cpuPeakScorer struct{}
type memoryScorer struct{}
type ioWaitScorer struct{}

var (
	_ scorer = cpuScorer{}
	_ scorer = cpuPeakScorer{}
	_ scorer = memoryScorer{}
	_ scorer = ioWaitScorer{}
)

func (cpuScorer) Name() string { return "cpu" }
func (s cpuScorer) Score(p *Policy, v nodeView) PluginScore {
	return PluginScore{s.Name(), v.cpuBlend, p.Weights.CPU * penalty(v.cpuBlend, p.Thresholds.CPU)}
}

func (cpuPeakScorer) Name() string { return "cpu-peak" }
func (s cpuPeakScorer) Score(p *Policy, v nodeView) PluginScore {
	return PluginScore{s.Name(), v.cpuPeak, p.Weights.CPUPeak * penalty(v.cpuPeak, p.Thresholds.CPU)}
}

func (memoryScorer) Name() string { return "memory" }
func (s memoryScorer) Score(p *Policy, v nodeView) PluginScore {
	return PluginScore{s.Name(), v.mem, p.Weights.Memory * penalty(v.mem, p.Thresholds.Memory)}
}

func (ioWaitScorer) Name() string { return "iowait" }
func (s ioWaitScorer) Score(p *Policy, v nodeView) PluginScore {
	return PluginScore{s.Name(), v.io, p.Weights.IOWait * penalty(v.io, p.Thresholds.IOWait)}
}

// scorers is the fixed, ordered list of scorers (the order of Score.Plugins).
var scorers = [...]scorer{cpuScorer{}, cpuPeakScorer{}, memoryScorer{}, ioWaitScorer{}}

// penalty maps a utilisation ratio x to points: 0 up to the threshold t (a dead band: nodes under thresholds
// are never a reason to move), then a step of thresholdStep points for crossing it, plus u = (x−t)/(1−t)
// scaled as 90·(u+u²)/2, so a fully used resource costs 100 points and more beyond. The step makes any
// crossing visible to the improvement rule; the convex part makes halving an excess worth more than moving it
// whole, which spreads load instead of shifting a hot spot. Hysteresis comes from the dead band and
// Policy.MinImprovement (15 by default, above the step): one resource barely over its threshold (a few
// points of noise) does not move a guest; a move must take a node clearly over and leave the target clearly
// below where the source was.
func penalty(x, t float64) float64 {
	if x <= t {
		return 0
	}
	u := (x - t) / (1 - t)
	return thresholdStep + 90*(u+u*u)/2
}

// thresholdStep is the points for crossing a threshold at all.
const thresholdStep = 10

// score runs every scorer on v.
func (m *model) score(v nodeView) Score {
	s := Score{Plugins: make([]PluginScore, len(scorers))}
	for i, sc := range scorers {
		s.Plugins[i] = sc.Score(&m.pol, v)
		s.Total += s.Plugins[i].Points
	}
	return s
}

// total is score(v).Total without allocating.
func (m *model) total(v nodeView) float64 {
	var t float64
	for _, sc := range scorers {
		t += sc.Score(&m.pol, v).Points
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
	if sign > 0 && !exact && (n.cpuPeak+u.cpuHi)/n.cpus <= m.pol.Thresholds.CPU {
		v.cpuPeak = (n.cpuPeak + u.cpuHi) / n.cpus
	} else {
		v.cpuPeak = quantileCombined(n.cpu, u.cpu, sign, q, m.scratch) / n.cpus
	}
	memLimit := min(m.pol.Thresholds.Memory, 1-m.pol.MemoryHeadroom) * n.memBytes
	var memPeak float64
	if sign > 0 && !exact && n.memPeak+u.memHi <= memLimit {
		memPeak = n.memPeak + u.memHi
	} else {
		memPeak = quantileCombined(n.mem, u.mem, sign, q, m.scratch)
	}
	v.memPeak = memPeak / n.memBytes
	v.mem = max(memCur, memPeak) / n.memBytes
	return v
}
