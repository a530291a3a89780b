package pvesim

import (
	"math"
	"time"
)

// usage is what a guest uses at one instant. Shares are of the guest's own cores and memory.
type usage struct {
	cpu float64
	mem float64
	// ioScale multiplies the base network and disk rates (busier guests move more bytes).
	ioScale float64
}

// workload evaluates a WorkloadSpec deterministically: the same seed, guest and time give the same usage.
type workload struct {
	spec  WorkloadSpec
	noise float64
	key   uint64
	// epoch is the scenario start, the origin of trends.
	epoch time.Time
}

func newWorkload(spec WorkloadSpec, seed int64, vmid int, epoch time.Time) workload {
	return workload{spec: spec, noise: *spec.Noise, key: mix(uint64(seed), uint64(vmid)), epoch: epoch}
}

// at is the usage at time t.
func (w workload) at(t time.Time) usage {
	s := w.spec
	cpu, mem := s.CPU, s.Memory
	switch s.Kind {
	case "diurnal":
		hours := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60 + float64(t.UTC().Second())/3600
		c := math.Cos(2 * math.Pi * (hours - s.PeakHour) / 24)
		cpu += s.Amplitude * c
		mem += s.Amplitude * 0.2 * c
	case "bursty":
		period := time.Duration(s.BurstEvery)
		idx := t.UnixNano() / int64(period)
		into := time.Duration(t.UnixNano() - idx*int64(period))
		if into < time.Duration(s.BurstLength) && unit(mix(w.key, uint64(idx))) < s.BurstChance {
			cpu += s.Burst
			mem += s.Burst * 0.1
		}
	case "trending":
		days := t.Sub(w.epoch).Hours() / 24
		cpu += s.Slope * days
		mem += s.MemorySlope * days
	}
	if w.noise > 0 {
		minute := uint64(t.Unix() / 60)
		cpu += w.noise * (2*unit(mix(w.key, minute)) - 1)
		mem += w.noise * 0.25 * (2*unit(mix(w.key^0x9e37, minute)) - 1)
	}
	cpu = clamp(cpu, 0, 1)
	mem = clamp(mem, 0.02, 1)
	return usage{cpu: cpu, mem: mem, ioScale: 0.5 + cpu}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// mix is splitmix64 over two words: a cheap, well-spread hash for seeded determinism.
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// counter is a monotonic byte counter that grew at rate bytes/s (with a gentle hourly wobble) for elapsed
// seconds; its derivative, rateAt, never goes negative.
func counter(rate float64, elapsed float64) uint64 {
	if elapsed <= 0 {
		return 0
	}
	const omega = 2 * math.Pi / 3600
	return uint64(rate*elapsed + rate*0.5/omega*(1-math.Cos(omega*elapsed)))
}

// rateAt is the derivative of counter: bytes per second after elapsed seconds.
func rateAt(rate float64, elapsed float64) float64 {
	if elapsed <= 0 {
		return 0
	}
	const omega = 2 * math.Pi / 3600
	return rate * (1 + 0.5*math.Sin(omega*elapsed))
}
