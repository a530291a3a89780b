package exporter

import "github.com/proxbalance/proxbalance/internal/pve"

// pressureView lists the six PSI values of a pve.Pressure as (resource, kind) series.
type pressureView pve.Pressure

type pressureSeries struct {
	resource, kind string
	value          float64
}

func (p *pressureView) series() [6]pressureSeries {
	// Ordered as the exposition sorts them (label kind before resource): see sortedGuests.
	return [6]pressureSeries{
		{"cpu", "full", p.CPUFull},
		{"io", "full", p.IOFull},
		{"memory", "full", p.MemoryFull},
		{"cpu", "some", p.CPUSome},
		{"io", "some", p.IOSome},
		{"memory", "some", p.MemorySome},
	}
}
