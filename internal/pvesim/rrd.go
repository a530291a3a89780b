package pvesim

import (
	"math"
	"time"
)

// rrdFrame is one timeframe of PVE's RRD: resolution and row count (pve-cluster PVE/RRD.pm).
type rrdFrame struct {
	step time.Duration
	rows int
}

func (s *Simulator) rrdFrame(timeframe string) rrdFrame {
	if s.major < 9 {
		// PVE ≤ 8 ("pve2-*" RRDs): rrdtool fetch answers 70 rows per timeframe.
		steps := map[string]time.Duration{"hour": time.Minute, "day": 30 * time.Minute, "week": 3 * time.Hour, "month": 12 * time.Hour, "year": 7 * 24 * time.Hour}
		return rrdFrame{step: steps[timeframe], rows: 70}
	}
	return map[string]rrdFrame{
		"hour":   {time.Minute, 60},
		"day":    {time.Minute, 1440},
		"week":   {30 * time.Minute, 336},
		"month":  {30 * time.Minute, 1440},
		"year":   {6 * time.Hour, 1440},
		"decade": {7 * 24 * time.Hour, 570},
	}[timeframe]
}

// rrdSeries evaluates sample over a frame ending now and consolidates each step with cf (AVERAGE or MAX), as
// rrdtool does from its 1-minute primary data points. sample returns false when the source had no data then
// (a stopped guest), which leaves the row with only the fixed fields.
func rrdSeries(frame rrdFrame, now time.Time, cf string, sample func(t time.Time) ([]float64, bool)) [][]float64 {
	end := now.Truncate(frame.step)
	perStep := int(min(6, max(1, frame.step/time.Minute)))
	out := make([][]float64, frame.rows)
	for i := range frame.rows {
		t := end.Add(-time.Duration(frame.rows-1-i) * frame.step)
		var acc []float64
		n := 0
		for k := range perStep {
			st := t.Add(-time.Duration(k) * frame.step / time.Duration(perStep))
			v, ok := sample(st)
			if !ok {
				continue
			}
			if acc == nil {
				acc = make([]float64, len(v))
				copy(acc, v)
			} else {
				for j := range v {
					if cf == "MAX" {
						acc[j] = math.Max(acc[j], v[j])
					} else {
						acc[j] += v[j]
					}
				}
			}
			n++
		}
		if acc != nil && cf != "MAX" {
			for j := range acc {
				acc[j] /= float64(n)
			}
		}
		out[i] = acc
	}
	return out
}

func rrdCF(c *call) string {
	if c.params["cf"] == "MAX" {
		return "MAX"
	}
	return "AVERAGE"
}

var (
	nodeRRDFields8 = []string{"loadavg", "cpu", "iowait", "memused", "rootused", "netin", "netout"}
	nodeRRDFields9 = append(append([]string{}, nodeRRDFields8...), "memavailable", "arcsize", "pressurecpusome", "pressureiosome", "pressureiofull", "pressurememorysome", "pressurememoryfull")
)

func (s *Simulator) getNodeRRD(c *call, now time.Time) (any, error) {
	n := s.node(c)
	frame := s.rrdFrame(c.params["timeframe"])
	cands := s.guestsEverOn(n.spec.Name)
	fields := nodeRRDFields8
	if s.major >= 9 {
		fields = nodeRRDFields9
	}
	memtotal := float64(n.spec.Memory)
	series := rrdSeries(frame, now, rrdCF(c), func(t time.Time) ([]float64, bool) {
		ns := s.nodeLoadAt(n, t, cands)
		v := []float64{ns.load, ns.cpu, ns.iowait, float64(ns.mem), float64(ns.rootUsed), ns.netin, ns.netout}
		if s.major >= 9 {
			v = append(v, memtotal-float64(ns.mem)+float64(ns.mem)/20, 0, ns.psi.cpuSome, ns.psi.ioSome, ns.psi.ioFull, ns.psi.memSome, ns.psi.memFull)
		}
		return v, true
	})
	end := now.Truncate(frame.step)
	out := make([]obj, len(series))
	for i, v := range series {
		row := obj{
			"time": end.Add(-time.Duration(len(series)-1-i) * frame.step).Unix(), "maxcpu": n.spec.CPUs,
			"memtotal": uint64(n.spec.Memory), "swaptotal": 0, "swapused": 0, "roottotal": uint64(n.spec.RootFS),
		}
		for j, f := range fields {
			row[f] = rrdValue(f, v[j])
		}
		out[i] = row
	}
	return out, nil
}

// rrdValue rounds a consolidated value: byte counts and sizes to integers, ratios to 6 digits.
func rrdValue(field string, v float64) float64 {
	switch field {
	case "cpu", "iowait", "loadavg":
		return round(v, 6)
	case "netin", "netout", "diskread", "diskwrite":
		return round(v, 2)
	}
	if len(field) > 8 && field[:8] == "pressure" {
		return round(v, 2)
	}
	return math.Round(v)
}

var (
	guestRRDFields8 = []string{"cpu", "mem", "netin", "netout", "diskread", "diskwrite"}
	guestRRDFields9 = append(append([]string{}, guestRRDFields8...), "memhost", "pressurecpusome", "pressurecpufull", "pressureiosome", "pressureiofull", "pressurememorysome", "pressurememoryfull")
)

func guestRRDHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, now time.Time) (any, error) {
		g, _, err := s.guestOn(c, typ)
		if err != nil {
			return nil, err
		}
		frame := s.rrdFrame(c.params["timeframe"])
		fields := guestRRDFields8
		if s.major >= 9 {
			fields = guestRRDFields9
		}
		nodeCands := map[string][]*simGuest{}
		net, dio := float64(g.spec.Workload.Net), float64(g.spec.Workload.DiskIO)
		series := rrdSeries(frame, now, rrdCF(c), func(t time.Time) ([]float64, bool) {
			if !g.ranAt(t) {
				return nil, false
			}
			u := g.wl.at(t)
			mem, memhost := guestMem(g, u)
			el := t.Sub(g.firstStart).Seconds()
			v := []float64{u.cpu, float64(mem), rateAt(net, el), rateAt(0.4*net, el), rateAt(dio, el), rateAt(0.6*dio, el)}
			if s.major >= 9 {
				node := g.nodeAt(t)
				if _, ok := nodeCands[node]; !ok {
					nodeCands[node] = s.guestsEverOn(node)
				}
				ns := s.nodeLoadAt(s.nodeByName[node], t, nodeCands[node])
				p := guestPSI(u, &ns)
				v = append(v, float64(memhost), p.cpuSome, p.cpuFull, p.ioSome, p.ioFull, p.memSome, p.memFull)
			}
			return v, true
		})
		end := now.Truncate(frame.step)
		out := make([]obj, len(series))
		for i, v := range series {
			row := obj{
				"time": end.Add(-time.Duration(len(series)-1-i) * frame.step).Unix(), "maxcpu": g.spec.Cores,
				"maxmem": uint64(g.spec.Memory), "maxdisk": maxDisk(g), "disk": guestDiskUsed(g),
			}
			if typ == "qemu" {
				row["disk"] = 0
			}
			for j, f := range fields {
				if v != nil {
					row[f] = rrdValue(f, v[j])
				}
			}
			out[i] = row
		}
		return out, nil
	}
}
