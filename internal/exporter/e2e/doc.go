// Package e2e tests the exporter end to end: its /pve handler reads the PVE simulator through the real client
// and Snapshotter, and real Prometheus and promtool judge the exposition. It holds tests only.
package e2e
