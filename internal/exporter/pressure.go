package exporter

import "github.com/proxbalance/proxbalance/internal/pve"

// pressureView lists the six PSI values of a pve.Pressure as (resource, kind) series.
type pressureView pve.Pressure

type pressureSeries struct {
	resource, kind string
	value          float64
}

func (p *pressureView) series() [6]pressureSeries {
	return [6]pressureSeries{
		{"cpu", "some", p.CPUSome},
		{"cpu", "full", p.CPUFull},
		{"io", "some", p.IOSome},
		{"io", "full", p.IOFull},
		{"memory", "some", p.MemorySome},
		{"memory", "full", p.MemoryFull},
	}
}
